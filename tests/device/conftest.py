"""Collect tests/device/test_*.py as MicroPython device tests (see host_tools.devtools.devtest)."""

from pathlib import Path

import pytest

from host_tools.devtools import devtest


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Collector:
    # These files are MicroPython: collect them as device tests, never import them into CPython.
    return DeviceFile.from_parent(parent, path=module_path)


class DeviceTestFailure(Exception):
    pass


class DeviceFile(pytest.File):
    def collect(self):  # type: ignore[no-untyped-def]
        source = self.path.read_text()
        self._runs: dict[str, devtest.FileRun] = {}
        for board in devtest.boards_for(source):
            for name in devtest.test_names(source):
                yield DeviceItem.from_parent(self, name=f"{name}[{board}]", test=name, board=board)

    def run_for(self, board: str) -> devtest.FileRun:
        if board not in self._runs:
            names = [
                i.test
                for i in self.session.items
                if isinstance(i, DeviceItem) and i.parent is self and i.board == board
            ]
            speed = devtest.speed_for(self.path.read_text())
            self._runs[board] = devtest.run_file(self.path, names, board, speed=speed)
        return self._runs[board]


class DeviceItem(pytest.Item):
    def __init__(self, *, test: str, board: str, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.test = test
        self.board = board

    def runtest(self) -> None:
        run = self.parent.run_for(self.board)  # type: ignore[attr-defined]
        result = run.results.get(self.test)
        if result is None:
            raise DeviceTestFailure(
                f"{self.test} did not run on {self.board} (exit {run.exit_code}):\n"
                + run.output[-3000:]
            )
        if result.status == "skip":
            pytest.skip(result.detail)
        if result.status != "pass":
            raise DeviceTestFailure(f"MicroPython on {self.board}:\n{result.output}")
        if result.output.strip():
            print(result.output)

    def repr_failure(self, excinfo, style=None):  # type: ignore[no-untyped-def]
        if isinstance(excinfo.value, DeviceTestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):  # type: ignore[no-untyped-def]
        return self.path, None, f"{self.test}[{self.board}]"
