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
	$(BIN)/medgap predict $(DEMO_RUN) $(DEMO_DATA)/imagesTs $(DEMO_RUN)/predictions --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Every benchmark in its default (quick, CPU) mode, then benchmarks/README.md from their JSON; < 15 min on 2 cores.
# A failing benchmark does not stop the others; the target fails at the end. bench_vs_nnunet.py is not run here:
# it installs nnU-Net v2 into its own venv and trains for hours (see benchmarks/README.md).
bench: $(STAMP)
	status=0; for f in $(filter-out benchmarks/bench_vs_nnunet.py,$(wildcard benchmarks/bench_*.py)); do \
	echo "== $$f"; $(BIN)/python $$f || status=1; done; \
	$(BIN)/python benchmarks/readme.py; exit $$status

# The same benchmarks on a GPU, sized for a short device slot (estimated ~12 min, not yet timed: no GPU has been
# lent): the papers' shapes in fp32 and bf16, four of them with torch.compile (~1 min of compiling a row), and the
# U-Net's sliding-window inference with and without bf16. Each setting writes its own JSON and README section.
GPU_ROWS := la/supervised_2/official la/supervised_4/official la/mean_teacher/official la/ss_net/official \
	acdc/supervised_12/official acdc/supervised_24/official acdc/mean_teacher/official acdc/ss_net/official \
	brats/shaspec/official digits/shaspec_cls/paper fundus/contig/official chest/amvlm/paper_tokens \
	chest/amvlm/official chest/amvlm_ssmis/official
GPU_COMPILE_ROWS := la/ss_net/official acdc/ss_net/official brats/shaspec/official chest/amvlm/official
GPU_STEP := $(BIN)/python benchmarks/bench_train_step.py --device cuda --threads 0 --min-steps 5 --budget-s 2
bench-gpu: $(STAMP)
	status=0; \
	$(GPU_STEP) --rows $(GPU_ROWS) || status=1; \
	$(GPU_STEP) --rows $(GPU_ROWS) --precision bf16-mixed || status=1; \
	$(GPU_STEP) --rows $(GPU_COMPILE_ROWS) --precision bf16-mixed --compile || status=1; \
	$(BIN)/python benchmarks/bench_inference.py --device cuda --repeats 2 || status=1; \
	$(BIN)/python benchmarks/bench_inference.py --device cuda --repeats 2 --amp || status=1; \
	$(BIN)/python benchmarks/readme.py; exit $$status

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
