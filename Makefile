# The two set-up commands of the README: `make run` (the embedded default: a real GRPO run on CPU)
# and `make test` (the whole test suite, what CI runs); `make test-fast` is the edit-test loop (unit
# tests only: no verl runs, no SLURM, a few minutes). Both create .venv on first use, on the CPU install path
# (torch pinned to 2.13.0 by constraints-cpu.txt, never torchvision).
VENV ?= .venv
ARGS ?=
# Two pytest workers (pytest-xdist), one test each at a time: a tiny verl run keeps the 2 cores about
# 60% busy (its processes start one after another), so two runs side by side finish the suite sooner.
# `--dist loadgroup`: tests sharing a module-scoped run or the SLURM cluster fixture stay on one worker
# (tests/conftest.py groups them).
TEST_WORKERS ?= 2
# Two verl runs side by side can race for a port: verl picks a free port for torch.distributed's
# rendezvous, releases it, then binds it - the other run may take it in between (seen once:
# EADDRINUSE in TCPStore). Only that error is retried, once; any other failure fails the test.
RERUN_PORT_RACE = --reruns 1 --only-rerun "EADDRINUSE|address already in use"
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run test test-fast

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints-cpu.txt -e '.[test,dicom]'
	touch $@

run: install
	$(VENV)/bin/radgrpo $(ARGS)

test: install
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(RERUN_PORT_RACE) $(ARGS)

test-fast: install
	$(VENV)/bin/python -m pytest tests/unit $(ARGS)
