# Motekit: every target creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BOARD  ?= sim-esp32
PORT   ?=
REGION ?=

.PHONY: venv demo test test-host test-device test-hil lint typecheck sim flash clean

venv: $(STAMP)

# Reinstall when the pins change; the stamp records a successful install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: venv
	$(BIN)/python -m host_tools.demo

# Every layer: host unit tests, device tests in MicroPython, the HIL suite on the virtual
# boards: all of it on sim-esp32 and sim-rp2, the radio and LoRaWAN tests on the LoRa boards
# (plus lint and typecheck above). JOBS pytest workers (pytest-xdist): most tests wait on
# a virtual board (a deploy at the UART's rate, a sleep), so three keep two cores busy.
JOBS ?= 3
test: venv lint typecheck
	$(BIN)/python -m pytest -q -n $(JOBS) tests hil_tests
	$(BIN)/python -m pytest -q -n $(JOBS) hil_tests --board sim-rp2
	$(BIN)/python -m pytest -q -n 2 hil_tests/test_lora_radio.py hil_tests/test_lorawan.py \
		--board sim-esp32-sx1276
	$(BIN)/python -m pytest -q hil_tests/test_lora_radio.py --board sim-esp32-s3-sx1262

test-host: venv
	$(BIN)/python -m pytest -q tests/host

test-device: venv
	$(BIN)/python -m pytest -q tests/device

test-hil: venv
	$(BIN)/python -m pytest -q hil_tests $(if $(PORT),--port $(PORT) --board $(BOARD))

lint: venv
	$(BIN)/ruff check host_tools firmware drivers tests hil_tests benchmarks
	$(BIN)/ruff format --check host_tools firmware drivers tests hil_tests benchmarks

typecheck: venv
	$(BIN)/python -m host_tools.devtools.typecheck

# Start a virtual board in the foreground; its pty path is printed. Ctrl-C stops it.
sim: venv
	$(BIN)/mote sim --board $(BOARD) $(SIM_ARGS)

# MicroPython (none for a virtual board), the firmware, then keys for a device the registry does
# not know yet. BOARD=sim-* uses the running virtual board of that kind, or starts one.
# REGION=EU868|US915 for a LoRa board.
NODE_PORT = $(if $(PORT),$(PORT),$(if $(filter sim-%,$(BOARD)),sim:$(BOARD)))
flash: venv
	$(BIN)/mote flash --board $(BOARD) $(if $(PORT),--port $(PORT)) --hold
	$(BIN)/mote provision --if-new $(if $(NODE_PORT),--port $(NODE_PORT)) \
		$(if $(REGION),--lorawan-region $(REGION))
	$(BIN)/mote release $(if $(NODE_PORT),--port $(NODE_PORT))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
