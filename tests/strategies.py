"""Hypothesis strategies shared by the property tests."""

from hypothesis import strategies as st


def json_values(text_size: int = 12):
    """Any JSON value, nested a little: what a config key or an API body may be given."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=text_size)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
