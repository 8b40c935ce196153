# seqmem: two commands set everything up.
#   make book         build the book into _build/html (executing every chapter)
#   make test         run the whole test suite (the book build included)
#   make lab          JupyterLab on the repository, with nbgrader's extensions
#   make assignments  regenerate the student notebooks in notebooks/ from solutions/ (and the gradebook's record of them)
#   make bench        run the benchmarks
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# nbgrader and jupyter-book call helper programs by name: the venv's bin comes first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONUNBUFFERED := 1

STAMP := $(VENV)/.installed
ASSIGNMENTS := $(notdir $(wildcard solutions/hw*))

# The execution cache is valid for one version of the library and of the environment: this key
# changes whenever a file in lib/seqmem, requirements.txt or pyproject.toml changes.
BOOK_KEY = $(shell find lib/seqmem -type f -name '*.py' -print0 | sort -z | \
	xargs -0 sha256sum requirements.txt pyproject.toml | sha256sum | cut -c1-16)

.PHONY: book test lab assignments bench book-key clean browser sandbox fonts

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# MathJax is served from the book itself (book/_static/mathjax, git-ignored), copied from the
# django-static-mathjax package: readers offline and the browser tests need no CDN.
MATHJAX := book/_static/mathjax
$(MATHJAX)/tex-chtml.js: $(STAMP)
	src=$$($(BIN)/python -c "import mathjax, os; print(os.path.join(os.path.dirname(mathjax.__file__), 'static', 'mathjax', 'es5'))") && \
	rm -rf $(MATHJAX) && mkdir -p $(MATHJAX) && cp -r "$$src"/tex-chtml.js "$$src"/input "$$src"/output "$$src"/ui "$$src"/a11y $(MATHJAX)/

book: $(STAMP) $(MATHJAX)/tex-chtml.js fonts
	@# The key is taken once, before the build: a library edited during a build re-executes next time.
	@# It is written before the build too: the cached executions belong to this library whether or
	@# not the build then fails on a warning, so a failed build re-executes only what changed.
	@key=$(BOOK_KEY); if [ -d _build ] && [ "$$(cat _build/.seqmem-key 2>/dev/null)" != "$$key" ]; then \
		echo "lib/seqmem or the requirements changed: clearing _build to re-execute every chapter"; \
		rm -rf _build; fi; \
	mkdir -p _build && echo $$key > _build/.seqmem-key && \
	$(BIN)/jupyter-book build . --warningiserror --keep-going --quiet
	@echo "The book is in _build/html/index.html"

book-key:
	@echo $(BOOK_KEY)

# The browser tests drive Debian's chromium (Playwright's own browser download fails offline).
# As root on Debian or Ubuntu it is installed here; elsewhere install it yourself, or the browser
# tests are skipped (in CI, where CI is set, they fail instead).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is not installed: the browser tests will be skipped"

# Figures write Chinese (chapter 4's translations): a CJK font for matplotlib, installed here as
# root on Debian or Ubuntu (fonts-noto-cjk); elsewhere install one of seqmem.viz.CJK_FONTS yourself.
fonts:
	@fc-list 2>/dev/null | grep -q "Noto Sans CJK" || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null; } || \
		echo "fonts-noto-cjk is not installed: figures with Chinese text will fail to build"

# Autograding runs student code in a bubblewrap sandbox (lib/seqmem/grading/sandbox.py): installed
# here as root on Debian or Ubuntu; elsewhere install bubblewrap yourself.
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
		echo "bubblewrap is not installed: autograding will refuse to run"

# Two workers (pytest-xdist, a module at a time): the book builds in one while the grading pipelines
# and the library's tests run in the other (tests/conftest.py orders the modules). TEST_WORKERS=0
# runs everything in this process.
TEST_WORKERS ?= 2
test: $(STAMP) browser sandbox fonts
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=.

# Also records each assignment and its graded cells in gradebook.db, which autograding needs.
assignments: $(STAMP)
	for a in $(ASSIGNMENTS); do $(BIN)/nbgrader generate_assignment "$$a" --force || exit 1; done

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python "$$b" || exit 1; done

# Removes the build only: gradebook.db holds the grades and is never deleted by make.
clean:
	rm -rf _build
