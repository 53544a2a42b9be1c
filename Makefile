# Two commands for a fresh machine with Python 3.11 + pip: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medgap-installed
DEMO_DATA ?= data/brain_tumour
DEMO_RUN ?= runs/demo_supervised_brain_tumour

.PHONY: venv demo test bench bench-gpu clean-demo

venv: $(STAMP)

# torch 2.13.0 first (a CPU build is cached on our machines; an unpinned torch would pull CUDA wheels),
# then the package and its test extras, which accept that torch and add nothing to it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medgap synth brain-tumour $(DEMO_DATA) --cases 36 --seed 0 --exist-ok
	$(BIN)/medgap train configs/supervised_brain_tumour.yaml --run-dir $(DEMO_RUN) --overwrite
	$(BIN)/medgap evaluate $(DEMO_RUN)
	$(BIN)/medgap predict $(DEMO_RUN) $(DEMO_DATA)/imagesTs $(DEMO_RUN)/predictions

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Every benchmark in its default (quick, CPU) mode, then benchmarks/README.md from their JSON; < 15 min on 2 cores.
# A failing benchmark does not stop the others; the target fails at the end.
bench: $(STAMP)
	status=0; for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || status=1; done; \
	$(BIN)/python benchmarks/readme.py; exit $$status

# The same benchmarks on a GPU: fp32 and bf16 (every row, official shapes included), bf16 + torch.compile (one row
# per family: compiling costs ~1 min a row), inference with and without bf16. Each setting writes its own JSON.
GPU_COMPILE_ROWS := acdc/ss_net/cpu la/ss_net/cpu brats/shaspec/cpu digits/shaspec_cls/paper fundus/contig/cpu \
	chest/amvlm/cpu chest/amvlm_ssmis/cpu
bench-gpu: $(STAMP)
	status=0; \
	$(BIN)/python benchmarks/bench_train_step.py --device cuda --full --threads 0 || status=1; \
	$(BIN)/python benchmarks/bench_train_step.py --device cuda --full --threads 0 --precision bf16-mixed || status=1; \
	$(BIN)/python benchmarks/bench_train_step.py --device cuda --threads 0 --precision bf16-mixed --compile \
		--rows $(GPU_COMPILE_ROWS) || status=1; \
	$(BIN)/python benchmarks/bench_inference.py --device cuda --full || status=1; \
	$(BIN)/python benchmarks/bench_inference.py --device cuda --full --amp || status=1; \
	$(BIN)/python benchmarks/readme.py; exit $$status

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
