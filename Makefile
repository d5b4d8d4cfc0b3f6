# The two commands a new user needs: `make demo` (train, evaluate, report) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
DEMO   := runs/demo

.PHONY: demo test venv data bench clean

demo: venv data
	$(BIN)/irat train --preset fmnist-quickstart --out $(DEMO) --overwrite
	$(BIN)/irat eval $(DEMO)/checkpoints/last.pt --attacks nat,pgd20
	@echo "run directory: $(DEMO)"

test: venv data
	$(BIN)/python -m pytest

bench: venv data
	$(BIN)/irat bench --out benchmarks/results/bench.json

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Fashion-MNIST: Debian's dataset-fashion-mnist when root can apt-get, else torchvision's download into data/
data:
	@if [ -f $(FMNIST) ] || [ -f data/FashionMNIST/raw/train-images-idx3-ubyte.gz ] || [ -f data/FashionMNIST/raw/train-images-idx3-ubyte ]; then \
		echo "Fashion-MNIST: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		$(BIN)/python -c "import torchvision; [torchvision.datasets.FashionMNIST('data', train=t, download=True) for t in (True, False)]"; \
	fi

clean:
	rm -rf $(VENV) runs
