"""The CUDA context by module loading: lazy (today's default) or eager (CUDA < 11.7, torch < 1.13)."""

from __future__ import annotations

import pytest

from advisor.catalog.gpus import get_gpu
from advisor.engines.overheads import CONSTANTS, predict_gpu_need
from advisor.engines.simulate import simulate

MIB = 2**20

pytestmark = pytest.mark.usefixtures("fast_simulations")


def test_eager_module_loading_takes_the_eager_context() -> None:
    result = simulate("tiny-llama", "baseline", 1, 16, fake_device="cpu")
    gpu = get_gpu("v100-16gb")
    lazy = predict_gpu_need(result, gpu)
    eager = predict_gpu_need(result, gpu, module_loading="eager")
    assert lazy.cuda_context_bytes == 450 * MIB == CONSTANTS["cuda_context_bytes"].value
    assert eager.cuda_context_bytes == 1343 * MIB  # the v4.21 guide's V100 reading
    assert eager.total_bytes - lazy.total_bytes == (1343 - 450) * MIB  # nothing else moves
    # a context the caller measured still wins
    assert predict_gpu_need(result, gpu, module_loading="eager", context_bytes=MIB).cuda_context_bytes == MIB
    with pytest.raises(ValueError, match="module_loading"):
        predict_gpu_need(result, gpu, module_loading="sometimes")
