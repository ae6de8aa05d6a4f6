"""Logging glue: a user's fixable input error is logged as one line, not as a traceback."""

from __future__ import annotations

import logging

from features.errors import InputError


class InputErrorWithoutTraceback(logging.Filter):
    """Drop the traceback from records whose exception is an InputError (bad input, not a bug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], InputError):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_input_error_tracebacks() -> None:
    """Attach the filter to every handler of Prefect's loggers (call after Prefect has configured logging)."""
    the_filter = InputErrorWithoutTraceback()
    loggers = [logging.getLogger("prefect")]
    loggers += [
        logging.getLogger(name) for name in logging.root.manager.loggerDict if name.startswith("prefect")
    ]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if not any(isinstance(f, InputErrorWithoutTraceback) for f in handler.filters):
                handler.addFilter(the_filter)
