"""Behaviour every implementation of a protocol must show. Each implementation's tests subclass
the contract class and provide the fixture it asks for; see the class docstrings."""
