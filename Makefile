# smail.xoauth2 — developer entry points. `make demo` and `make test` work on a fresh machine
# with Python 3.11+, make and git; everything else is installed into .venv from the requirement files.
# `make test-core CORE=2.21` runs them on one ansible-core line (in a Debian 13 root when this Python is too old).

PYTHON ?= python3
VENV ?= .venv
# CORE=2.20 installs that ansible-core line into the venv; empty: the newest line requirements-dev.txt allows here.
CORE ?=
# A line whose first release is not yet on the registry is asked for by its release candidates: pip takes a
# pre-release only when the specifier names one. Drop 2.22's entry once the registry serves 2.22.0.
CORE_PRERELEASE_2.22 := ansible-core>=2.22.0rc1,<2.23
ANSIBLE_CORE_SPEC ?= $(if $(CORE),$(or $(CORE_PRERELEASE_$(CORE)),ansible-core==$(CORE).*))
BIN := $(abspath $(VENV))/bin
PY := $(BIN)/python
BUILD := $(abspath .build)
COLLECTION := $(BUILD)/ansible_collections/smail/xoauth2
STATE := $(BUILD)/sandbox
DEMO := $(BUILD)/demo
ANSIBLE_TEST := cd $(COLLECTION) && PATH=$(BIN):$$PATH $(BIN)/ansible-test
# ansible-test's controller and target Python: the venv's own (evaluated when a recipe runs, after the venv exists).
TEST_PYTHON = $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

export ANSIBLE_COLLECTIONS_PATH := $(BUILD)
export ANSIBLE_NOCOLOR := 1
# The PATH make was started with, for commands run as the user's shell would run them.
USER_PATH := $(PATH)
export PATH := $(BIN):$(PATH)
export SMAIL_XOAUTH2_SANDBOX_DIR := $(abspath sandbox)

.PHONY: help venv venv-demo build demo test lint sanity units docs-tests sandbox-tests integration sandbox-start \
  sandbox-stop clean reliability-matrix get-pip test-core

help:
	@echo "make demo   render SMAIL config for three local hosts from vault, send notifications through XOAUTH2 to the local sandbox"
	@echo "make test   lint, sanity, unit, docs, sandbox and integration tests (starts and stops the sandbox)"
	@echo "make docs-tests   docs/getting-started.md run as written, ansible-playbook against a sandbox of its own"
	@echo "make sandbox-tests   the sandbox's own tests (sandbox/tests), on no particular ansible-core line"
	@echo "make lint   ansible-lint, ruff, mypy, antsibull-changelog and antsibull-docs on the built collection,"
	@echo "           ansible-lint also on the benchmarks' and the sandbox's playbooks, ruff also on sandbox/"
	@echo "make test-core CORE=2.21 [SUITES='demo units sanity integration lint']"
	@echo "           the suites on one ansible-core line, in a Debian 13 root when this Python is too old for it"

# Two layers: what the demo needs (ansible-core, the runtime and the sandbox: requirements-demo.txt), and on top of
# it what the tests and linters need (requirements-dev.txt). A change of CORE starts both again.
DEMO_VENV_STAMP := $(VENV)/.installed-demo$(if $(CORE),-$(CORE))
VENV_STAMP := $(VENV)/.installed-dev$(if $(CORE),-$(CORE))

venv: $(VENV_STAMP)
venv-demo: $(DEMO_VENV_STAMP)

$(DEMO_VENV_STAMP): requirements-demo.txt requirements.txt sandbox/requirements.txt
	@echo "== venv: installing requirements-demo.txt $(ANSIBLE_CORE_SPEC) into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-demo.txt $(if $(ANSIBLE_CORE_SPEC),'$(ANSIBLE_CORE_SPEC)')
	@rm -f $(VENV)/.installed*
	@touch $@

$(VENV_STAMP): $(DEMO_VENV_STAMP) requirements-dev.txt tests/unit/requirements.txt tests/integration/requirements.txt
	@echo "== venv: installing requirements-dev.txt $(ANSIBLE_CORE_SPEC) into $(VENV)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt $(if $(ANSIBLE_CORE_SPEC),'$(ANSIBLE_CORE_SPEC)')
	@touch $@

# ansible-test wants the collection under ansible_collections/NAMESPACE/NAME: copy the working tree there,
# without what is not collection content (the sandbox, CI scripts and benchmarks run from the checkout).
# ansible-test lists files through git; the copy sits in the checkout's ignored .build, so it gets its own index.
NOT_COLLECTION := sandbox .ci benchmarks

build: venv-demo
	@echo "== build: $(COLLECTION)"
	@rm -rf $(COLLECTION)
	@mkdir -p $(COLLECTION)
	@git ls-files -z --cached --others --exclude-standard | grep -zv $(foreach dir,$(NOT_COLLECTION),-e '^$(subst .,\.,$(dir))/') \
	  | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C $(COLLECTION)
	@cd $(COLLECTION) && git init -q && git add -A

sandbox-start: build
	@echo "== sandbox: starting (log: $(BUILD)/sandbox.log)"
	@$(PY) sandbox/xoauth2_sandbox stop --state-dir $(STATE) >/dev/null 2>&1 || true
	@rm -rf $(STATE) && mkdir -p $(STATE)
	@nohup $(PY) sandbox/xoauth2_sandbox run --state-dir $(STATE) > $(BUILD)/sandbox.log 2>&1 &
	@$(PY) sandbox/xoauth2_sandbox wait --state-dir $(STATE) --timeout 60 || { cat $(BUILD)/sandbox.log; exit 1; }

sandbox-stop:
	@echo "== sandbox: stopping"
	-@$(PY) sandbox/xoauth2_sandbox stop --state-dir $(STATE)

# The demo's inventory, vaulted credentials, vault password and ansible.cfg are written by sandbox/demo.py into
# $(DEMO), each host's rendered files into $(DEMO)/hosts/HOST/; the report runs also after a failed play.
# The demo stops its sandbox, so the next step it prints starts one first: `make playground`, which also writes the
# demo's files for that sandbox. To prove that line, the demo runs it once as printed, without make's environment
# (its output in $(DEMO_NEXT_LOG)), and looks for the summary mail the callback sent; then stops the sandbox again.
shown = $(patsubst $(CURDIR)/%,%,$(1))
DEMO_NEXT = make$(if $(MAKEOVERRIDES), $(MAKEOVERRIDES)) playground && . $(call shown,$(PLAYGROUND))/env.sh \
  && ANSIBLE_CONFIG=$(call shown,$(DEMO))/ansible.cfg ansible-playbook playbooks/demo.yml
DEMO_NEXT_LOG = $(BUILD)/demo-next.log

demo: sandbox-start
	@echo "== demo: three hosts configured from vault, notifications through the sandbox"
	@status=0; rm -rf $(DEMO); \
	$(PY) sandbox/demo.py prepare --state-dir $(STATE) --demo-dir $(DEMO) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  ANSIBLE_CONFIG=$(DEMO)/ansible.cfg $(BIN)/ansible-playbook $(COLLECTION)/playbooks/demo.yml || status=$$?; \
	  $(PY) sandbox/demo.py report --state-dir $(STATE) --demo-dir $(DEMO) || { rc=$$?; [ $$status -ne 0 ] || status=$$rc; }; \
	fi; \
	$(MAKE) --no-print-directory sandbox-stop; [ $$status -eq 0 ] || exit $$status; \
	echo "== demo: checking the next step below as printed (log: $(call shown,$(DEMO_NEXT_LOG)))"; \
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_NOCOLOR -u SMAIL_XOAUTH2_SANDBOX_DIR \
	  PATH='$(USER_PATH)' sh -c '$(DEMO_NEXT)' > $(DEMO_NEXT_LOG) 2>&1 || status=$$?; \
	[ $$status -ne 0 ] || grep -q '^smail.xoauth2.notify: summary mail .* sent to' $(DEMO_NEXT_LOG) || status=1; \
	$(MAKE) --no-print-directory sandbox-stop >/dev/null; \
	if [ $$status -ne 0 ]; then tail -n 30 $(DEMO_NEXT_LOG); echo "== demo: the next step failed (rc=$$status)"; exit $$status; fi; \
	echo ""; \
	echo "Next: the demo's playbook by hand, against a sandbox that stays up (make playground-stop ends it):"; \
	echo ""; \
	printf '  %s\n' '$(DEMO_NEXT)'

# ansible-test bootstraps pip in its venvs from ~/.ansible/test/cache/get_pip_<its pip version>.py (24.2 for 2.19,
# 25.2 for 2.21): the offline stand-in goes under the name the installed ansible-test looks for.
get-pip: venv
	@$(PY) .ci/install_get_pip.py .ci/get_pip_offline.py

# Every linter of the collection runs on the built copy: there the test playbooks resolve smail.xoauth2 through
# ANSIBLE_COLLECTIONS_PATH, and mypy imports the cores as ansible_collections.smail.xoauth2. ruff also runs on the
# checkout's sandbox/ (not collection content), with the same ruff.toml.
# ansible-lint also runs on what the checkout holds besides the collection (the benchmarks' and the sandbox's
# playbooks), with the same .ansible-lint: together the two runs cover every file of the repository.
# ansible-core's own YAML loader warns when a key overrides a `<<:` merge (allowed YAML, used in the tests);
# real duplicate keys are still caught by ansible-lint's yaml[key-duplicates].
lint: venv build
	@echo "== lint: ansible-lint (production profile)"
	@cd $(COLLECTION) && ANSIBLE_DUPLICATE_YAML_DICT_KEY=ignore $(BIN)/ansible-lint --nocolor -q
	@echo "== lint: ansible-lint (production profile) on $(NOT_COLLECTION)"
	@ANSIBLE_DUPLICATE_YAML_DICT_KEY=ignore $(BIN)/ansible-lint --nocolor -q $(NOT_COLLECTION)
	@echo "== lint: ruff"
	@cd $(COLLECTION) && $(BIN)/ruff check --no-cache --quiet plugins
	@$(BIN)/ruff check --no-cache --quiet sandbox
	@echo "== lint: mypy"
	@cd $(BUILD) && $(BIN)/mypy --config-file $(COLLECTION)/.mypy.ini --cache-dir $(BUILD)/mypy_cache \
	  -p ansible_collections.smail.xoauth2.plugins
	@echo "== lint: antsibull-changelog"
	@cd $(COLLECTION) && $(BIN)/antsibull-changelog lint
	@echo "== lint: antsibull-docs (collection and plugin docs)"
	@cd $(COLLECTION) && $(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

# The module and its module_utils run on the managed nodes' Pythons: every target Python the installed ansible-test
# supports (its REMOTE_ONLY_ and CONTROLLER_PYTHON_VERSIONS: 3.8-3.14 for 2.19-2.21, 3.9-3.15 for 2.22). Besides
# the full sanity run on the controller's Python, every other one found here (on PATH or under pyenv) gets
# ansible-test's compile test. Only the registries are reachable here and no registry serves Python builds: on this
# machine that leaves 3.11 (Debian 12, pyenv) and 3.13 (the Debian 13 root); each one missing is named, not compiled.
TARGET_PYTHONS = $(shell $(PY) -c 'from ansible_test._util.target.common import constants as c; \
  print(" ".join(c.REMOTE_ONLY_PYTHON_VERSIONS + c.CONTROLLER_PYTHON_VERSIONS))')
# ansible-core 2.22.0rc1's requirements for the pylint test name a git archive of dill
# (sanity.pylint.txt: "dill @ https://github.com/..."), which no registry serves: on a 2.22 release candidate the
# pylint test is skipped, and said so. 2.22.0 runs it again (the check is on the installed version, not on CORE).
SANITY_SKIP = $(shell $(PY) -c 'from ansible.release import __version__ as v; \
  print("pylint" if v.startswith("2.22.0rc") else "")')

sanity: venv build get-pip
	@echo "== sanity: ansible-test sanity (Python $(TEST_PYTHON))"
	@$(foreach test,$(SANITY_SKIP),echo "== sanity: $(test) skipped: its requirements name a git archive no registry serves";)
	@$(ANSIBLE_TEST) sanity --venv --python $(TEST_PYTHON) --color no $(foreach test,$(SANITY_SKIP),--skip-test $(test))
	@for version in $(TARGET_PYTHONS); do \
	  [ "$$version" != "$(TEST_PYTHON)" ] || continue; \
	  extra=$$(ls -d $(HOME)/.pyenv/versions/$$version.*/bin 2>/dev/null | tail -n 1); \
	  if command -v python$$version >/dev/null 2>&1 || [ -n "$$extra" ]; then \
	    echo "== sanity: compile on target Python $$version"; \
	    ( cd $(COLLECTION) && PATH=$(BIN):$$PATH$${extra:+:$$extra} $(BIN)/ansible-test sanity --test compile --venv \
	      --python $$version --color no ) || exit 1; \
	  else \
	    echo "== sanity: target Python $$version is not on this machine (no registry here serves it): not compiled"; \
	  fi; \
	done

# The unit tests run in UNIT_WORKERS processes (pytest-xdist; `auto`: one per CPU, 0: in pytest's own process).
UNIT_WORKERS ?= auto
# Each build copies the tests afresh, and each worker would rewrite the asserts of every test module and compile it
# again (seconds of the run): the compiled modules are kept outside the copy, in $(PYCACHE), and used while their
# sources are unchanged (the copy keeps the files' times). Nothing is written beside the sources.
PYCACHE := $(BUILD)/pycache
units: venv build
	@echo "== units: pytest tests/unit"
	@cd $(COLLECTION) && env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(PYCACHE) PYTHONPATH=$(BUILD) \
	  $(PY) -m pytest -q -p no:cacheprovider -n $(UNIT_WORKERS) tests/unit

# The guide docs/getting-started.md run as written (tests/docs), against a sandbox of its own: real ansible-playbook
# runs, which are no unit tests and take longer than all of them. CI runs them on one line, beside the sandbox's tests.
docs-tests: venv build
	@echo "== docs-tests: pytest tests/docs"
	@cd $(COLLECTION) && PYTHONPATH=$(BUILD) $(PY) -m pytest -q -p no:cacheprovider tests/docs

# The sandbox's own tests run from the checkout (the sandbox is no collection content) against sandboxes they start
# themselves; they depend on no ansible-core line, so CI runs them on one line only (.ci/matrix.sh).
sandbox-tests: venv
	@echo "== sandbox-tests: pytest sandbox/tests"
	@cd sandbox && $(PY) -m pytest -q -p no:cacheprovider tests

# Dovecot's submission server is the third-party XOAUTH2 server: it checks tokens at the sandbox's /tokeninfo.
# The packaging target builds the collection under test, installs the tarball into an empty path and sends from there.
# TARGETS="mail packaging" limits the run to those targets.
integration: venv sandbox-start
	@echo "== integration: ansible-test integration (with Dovecot)"
	@status=0; \
	$(PY) sandbox/dovecot_submission.py start --state-dir $(STATE) || status=$$?; \
	if [ $$status -eq 0 ]; then \
	  $(PY) sandbox/integration_config.py --state-dir $(STATE) > $(COLLECTION)/tests/integration/integration_config.yml; \
	  ( $(ANSIBLE_TEST) integration --local --python $(TEST_PYTHON) --color no -v $(TARGETS) ) || status=$$?; \
	fi; \
	$(PY) sandbox/dovecot_submission.py stop --state-dir $(STATE); \
	$(MAKE) --no-print-directory sandbox-stop; exit $$status

# The fault matrix of docs/reliability.md: the mail_faults and mail_spool_faults targets against a fresh sandbox, then
# its table rewritten.
reliability-matrix: venv sandbox-start
	@status=0; \
	$(PY) sandbox/integration_config.py --state-dir $(STATE) > $(COLLECTION)/tests/integration/integration_config.yml; \
	( $(ANSIBLE_TEST) integration --local --python $(TEST_PYTHON) --color no mail_faults mail_spool_faults ) || status=$$?; \
	[ $$status -ne 0 ] || $(PY) sandbox/fault_matrix.py --state-dir $(STATE) --doc docs/reliability.md || status=$$?; \
	$(MAKE) --no-print-directory sandbox-stop; exit $$status

# Each suite (lint, sanity, units, docs-tests, sandbox-tests, integration) stops make on failure: reaching the line
# below means all six passed.
test: lint sanity units docs-tests sandbox-tests integration
	@echo "suites: 6 passed, 0 failed"

# One ansible-core line: natively when this machine's python3 is new enough for it, otherwise in a Debian 13 root
# under .build/roots (see .ci/core_root.sh); each suite runs on its own and a table of results ends the run.
SUITES ?= demo units sanity integration lint
test-core:
	@test -n "$(CORE)" || { echo "make test-core needs CORE=2.19|2.20|2.21|2.22"; exit 2; }
	@.ci/core_root.sh $(CORE) $(SUITES)

clean:
	@echo "== clean: $(BUILD) $(VENV)"
	@rm -rf $(BUILD) $(VENV)

# --- playground: the sandbox left running for playbooks of one's own ------------------------------------------
# `make playground` starts the sandbox, writes $(PLAYGROUND)/env.sh and a first playbook, and prints how to use them;
# `make playground-stop` stops the sandbox and deletes nothing (`make clean` does).
# The sandbox's settings: .build/sandbox/sandbox.json (see sandbox/README.md).
PLAYGROUND := $(BUILD)/playground

.PHONY: playground playground-stop

playground: sandbox-start
	@mkdir -p $(PLAYGROUND)
	@printf '%s\n' \
	  '# source this file: the collection under test, the venv, the sandbox settings' \
	  'export ANSIBLE_COLLECTIONS_PATH=$(BUILD)' \
	  'export PATH=$(BIN):$$PATH' \
	  'export SMAIL_XOAUTH2_SANDBOX_JSON=$(STATE)/sandbox.json' \
	  > $(PLAYGROUND)/env.sh
	@cp sandbox/playground/hello.yml $(PLAYGROUND)/hello.yml
	@$(PY) sandbox/demo.py prepare --state-dir $(STATE) --demo-dir $(DEMO) >/dev/null
	@$(PY) -c 'import json, shlex, sys; s = json.load(open(sys.argv[1])); \
	  names = {"CLIENT_ID": "client_id", "CLIENT_SECRET": "client_secret", "REFRESH_TOKEN": "refresh_token", \
	    "TOKEN_URI": "token_uri", "CA_PATH": "ca_path", "HOST": "host", "PORT": "smtp_ssl_port", "NOTIFY_SENDER": "account"}; \
	  print("# source this file after env.sh: the notify callback, sending every summary to the sandbox"); \
	  print("export ANSIBLE_CALLBACKS_ENABLED=smail.xoauth2.notify SMAIL_XOAUTH2_PROVIDER=custom"); \
	  print("export SMAIL_XOAUTH2_NOTIFY_TO=you@example.com SMAIL_XOAUTH2_NOTIFY_ON=always"); \
	  [print(f"export SMAIL_XOAUTH2_{name}={shlex.quote(str(s[key]))}") for name, key in names.items()]' \
	  $(STATE)/sandbox.json > $(PLAYGROUND)/notify-env.sh
	@echo ""
	@echo "The sandbox is up and stays up (make playground-stop ends it). Its settings: $(STATE)/sandbox.json"
	@echo "(keys described in sandbox/README.md). In a shell:"
	@echo ""
	@echo "  . $(PLAYGROUND)/env.sh"
	@echo "  ansible-playbook $(PLAYGROUND)/hello.yml"
	@echo "  python sandbox/show_mail.py --state-dir $(STATE) --last 2   # the newest received messages (.eml in $(STATE)/mail)"
	@echo ""
	@echo "The notify callback over any playbook, with the sandbox's client in the environment:"
	@echo ""
	@echo "  . $(PLAYGROUND)/notify-env.sh"
	@echo "  ansible-playbook $(PLAYGROUND)/hello.yml"
	@echo ""
	@echo "The demo's playbook, with its files in $(DEMO) written for this sandbox (after env.sh, from this folder):"
	@echo ""
	@echo "  ANSIBLE_CONFIG=$(DEMO)/ansible.cfg ansible-playbook playbooks/demo.yml"

playground-stop: sandbox-stop

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
