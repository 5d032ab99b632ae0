"""The one error type for bad dataset input; messages name the file, the item and the field."""


class DatasetError(ValueError):
    """A dataset file or record is missing, unreadable or malformed."""
