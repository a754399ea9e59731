"""`ConfigValue`: small objects that are described by their config.

Schedules and mask structures are values: two with the same config are
equal, hash alike and print as their constructor call.
"""


class ConfigValue:
    """Equality, hash, repr and `from_config` from `get_config()`."""

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
