# smail.xoauth2 — developer entry points. `make demo` and `make test` work on a fresh machine
# with Python 3.11+, make and git; everything else is installed into .venv from the requirement files.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
PY := $(BIN)/python
BUILD := $(abspath .build)
COLLECTION := $(BUILD)/ansible_collections/smail/xoauth2
STATE := $(BUILD)/sandbox
DEMO := $(BUILD)/demo
GET_PIP := $(HOME)/.ansible/test/cache/get_pip_24_2.py
ANSIBLE_TEST := cd $(COLLECTION) && PATH=$(BIN):$$PATH $(BIN)/ansible-test

export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
export ANSIBLE_NOCOLOR := 1
export PATH := $(BIN):$(PATH)
export SMAIL_XOAUTH2_SANDBOX_DIR := $(abspath sandbox)

.PHONY: help venv build demo test sanity units integration sandbox-start sandbox-stop clean

help:
	@echo "make demo   render SMAIL config for three local hosts from vault, send notifications through XOAUTH2 to the local sandbox"
	@echo "make test   sanity, unit and integration tests (starts and stops the sandbox)"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt requirements.txt tests/unit/requirements.txt tests/integration/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# ansible-test wants the collection under ansible_collections/NAMESPACE/NAME: copy the working tree there,
# without what is not collection content (the sandbox and CI scripts run from the checkout).
build: venv
	rm -rf $(COLLECTION)
	mkdir -p $(COLLECTION)
	git ls-files -z --cached --others --exclude-standard | grep -zv -e '^sandbox/' -e '^\.ci/' -e '^benchmarks/' \
	  | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C $(COLLECTION)
	# ansible-test lists files through git; the copy sits in the checkout's ignored .build, so it gets its own index.
	cd $(COLLECTION) && git init -q && git add -A

sandbox-start: build
	$(PY) sandbox/xoauth2_sandbox.py stop --state-dir $(STATE) >/dev/null 2>&1 || true
	rm -rf $(STATE) && mkdir -p $(STATE)
	nohup $(PY) sandbox/xoauth2_sandbox.py run --state-dir $(STATE) > $(BUILD)/sandbox.log 2>&1 &
	$(PY) sandbox/xoauth2_sandbox.py wait --state-dir $(STATE) --timeout 60 || { cat $(BUILD)/sandbox.log; exit 1; }

sandbox-stop:
	-$(PY) sandbox/xoauth2_sandbox.py stop --state-dir $(STATE)

# The demo's inventory, vaulted credentials, vault password and ansible.cfg are written by sandbox/demo.py into
# $(DEMO), each host's rendered files into $(DEMO)/hosts/HOST/; the report runs also after a failed play.
demo: sandbox-start
	@status=0; rm -rf $(DEMO); \
	$(PY) sandbox/demo.py prepare --state-dir $(STATE) --demo-dir $(DEMO) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  ANSIBLE_CONFIG=$(DEMO)/ansible.cfg $(BIN)/ansible-playbook $(COLLECTION)/playbooks/demo.yml || status=$$?; \
	  $(PY) sandbox/demo.py report --state-dir $(STATE) --demo-dir $(DEMO) || { rc=$$?; [ $$status -ne 0 ] || status=$$rc; }; \
	fi; \
	$(MAKE) --no-print-directory sandbox-stop; exit $$status

$(GET_PIP): .ci/get_pip_offline.py
	mkdir -p $(dir $@)
	cp $< $@

sanity: build $(GET_PIP)
	$(ANSIBLE_TEST) sanity --venv --python 3.11 --color no

units: build
	cd $(COLLECTION) && PYTHONPATH=$(BUILD) $(PY) -m pytest -q -p no:cacheprovider tests/unit

# Dovecot's submission server is the third-party XOAUTH2 server: it checks tokens at the sandbox's /tokeninfo.
integration: sandbox-start
	@status=0; \
	$(PY) sandbox/dovecot_submission.py start --state-dir $(STATE) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  $(PY) sandbox/integration_config.py --state-dir $(STATE) > $(COLLECTION)/tests/integration/integration_config.yml; \
	  ( $(ANSIBLE_TEST) integration --local --python 3.11 --color no -v ) || status=$$?; \
	fi; \
	$(PY) sandbox/dovecot_submission.py stop --state-dir $(STATE); \
	$(MAKE) --no-print-directory sandbox-stop; exit $$status

# Each suite (sanity, units, integration) stops make on failure: reaching the line below means all three passed.
test: sanity units integration
	@echo "suites: 3 passed, 0 failed"

clean:
	rm -rf $(BUILD) $(VENV)

# `make bench` (not part of `make test`): the performance cases of docs/performance.md against a sandbox of its own,
# in a benchmark-only venv with the community `ansible` package (community.general.mail) on ansible-core 2.19.
BENCH_VENV := $(BUILD)/bench-venv

$(BENCH_VENV)/.installed: benchmarks/requirements.txt requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
	touch $@

.PHONY: bench
bench: build $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/bench.py --sandbox-python $(PY) --collections $(BUILD) \
	  --work-dir $(BUILD)/bench --report docs/performance.md --plot docs/performance-scaling.png
