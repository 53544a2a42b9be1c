# Two commands for a fresh machine with Python 3.11 + pip: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medgap-installed
DEMO_DATA ?= data/brain_tumour
DEMO_RUN ?= runs/demo_supervised_brain_tumour

.PHONY: venv demo test bench clean-demo

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

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
