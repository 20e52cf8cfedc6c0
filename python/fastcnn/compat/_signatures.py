"""A compat class called with another write-up's arguments says which signature it takes.

The write-ups use clashing names and signatures for similar layers (001's
``FCLayer(output_size)``, 002's ``Dense(input_size, output_size)``, 004's
``Output(input_len, nodes)``), so a call copied from the wrong one is a common mistake.
Python's own message ("takes 2 positional arguments but 3 were given") does not say
which write-up the class follows nor where the other signature lives.
"""

import functools
import inspect
import reprlib


def writeup_signature(writeup, see_also=""):
    """Class decorator: a call that does not fit ``__init__`` raises a TypeError naming
    the class's signature, its write-up (``writeup``, e.g. "001") and, when given,
    ``see_also`` (where the look-alike signatures are). The class is otherwise unchanged;
    ``inspect.signature`` still shows the original ``__init__``."""

    def decorate(cls):
        initialise = cls.__init__
        signature = inspect.signature(initialise)
        shown = signature.replace(parameters=list(signature.parameters.values())[1:])

        @functools.wraps(initialise)
        def __init__(self, *args, **kwargs):
            try:
                signature.bind(self, *args, **kwargs)
            except TypeError as error:
                arguments = [reprlib.repr(a) for a in args]
                arguments += [f"{k}={reprlib.repr(v)}" for k, v in kwargs.items()]
                message = (
                    f"{cls.__name__} takes write-up {writeup}'s signature "
                    f"{cls.__name__}{shown}, got {cls.__name__}({', '.join(arguments)}) "
                    f"({error})"
                )
                if see_also:
                    message += f"; {see_also}"
                raise TypeError(message) from None
            initialise(self, *args, **kwargs)

        cls.__init__ = __init__
        return cls

    return decorate
