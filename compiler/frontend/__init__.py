"""Keras-style model definitions: layers store configuration, models lower to the IR."""
