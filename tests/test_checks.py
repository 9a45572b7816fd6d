"""The declarative shape check."""

import numpy as np
import pytest
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.utils.checks import check_shape


def test_exact_and_named_dimensions_bind_and_agree():
    sizes = check_shape(np.zeros((4, 32, 48)), ["B", "H", "W"], "masks")
    assert sizes == {"B": 4, "H": 32, "W": 48}
    assert check_shape(torch.zeros(4, 3, 3), ["B", "3", "3"], "K", sizes) is sizes


@pytest.mark.parametrize("shape, message", [
    ((3, 3), r"K must be \(B,3,3\) with B=4, got shape \(3, 3\)"),       # wrong rank
    ((4, 3, 4), r"K must be \(B,3,3\) with B=4, got shape \(4, 3, 4\)"),  # wrong fixed size
    ((5, 3, 3), r"K must be \(B,3,3\) with B=4, got shape \(5, 3, 3\)"),  # B differs from the masks'
])
def test_mismatches_name_the_argument_and_the_expected_layout(shape, message):
    with pytest.raises(Mask2HandError, match=message):
        check_shape(np.zeros(shape), ["B", "3", "3"], "K", {"B": 4})


def test_a_name_repeated_in_one_shape_must_agree_and_star_matches_anything():
    check_shape(np.zeros((5, 5, 2)), ["S", "S", "*"], "square")
    with pytest.raises(Mask2HandError, match=r"square must be \(S,S,\*\)"):
        check_shape(np.zeros((5, 6, 2)), ["S", "S", "*"], "square")


def test_something_without_a_shape_is_refused():
    with pytest.raises(Mask2HandError, match=r"K must be \(3,3\), got shape \(\)"):
        check_shape([[1, 0, 0]], ["3", "3"], "K")
