"""Writing MicroPython onto a board: the image cache, esptool for the ESP32 family, UF2 for the
RP2040. Services only (no click): `mote flash` and `mote images` call them.

    image = find_image(board)                        # images.py: the cache, checked
    result = flash_esp(board, port, image, erase=None, progress=show)    # esp.py
    port = flash_uf2(board, port, image, progress=show)                  # uf2.py

A progress callback is called as progress(step, done, total): step is "erase", "write" or
"copy"; done and total count bytes of the image (erase reports 0 then 1 of 1).
"""

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
