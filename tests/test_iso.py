"""ISO 20816 zones: known boundaries per machine class."""

import numpy as np
import pandas as pd

from features.iso import class_names, iso_zone, normalise_class


def test_zone_boundaries_per_class():
    velocity = np.array([0.5, 1.2, 3.0, 8.0, 3.0, 3.0, np.nan])
    classes = pd.Series(["II", "II", "II", "II", "I", "IV", "II"])
    np.testing.assert_array_equal(iso_zone(velocity, classes), [1, 2, 3, 4, 3, 2, np.nan])


def test_a_boundary_value_belongs_to_the_higher_zone():
    assert iso_zone(np.array([2.8]), pd.Series(["II"]))[0] == 3


def test_class_spellings_and_default():
    got = normalise_class(pd.Series(["iii", "2", None, "ix", " IV "]))
    assert list(got) == ["III", "II", "II", "II", "IV"]


def test_classes_given_as_numbers_of_any_type_keep_their_class():
    # a CSV column with a blank reads as floats; the store keeps a number as it was written
    assert list(normalise_class(pd.Series([3.0, 1.0, np.nan]))) == ["III", "I", "II"]
    assert list(normalise_class(pd.Series([4, 2]))) == ["IV", "II"]
    got = class_names(pd.Series(["Class III", "class-2", "3.0", 2.5, "V", ""], dtype=object))
    assert list(got) == ["III", "II", "III", None, None, None]
