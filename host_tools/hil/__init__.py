"""Hardware-in-the-loop testing: the pytest plugin behind hil_tests/ and the Node it hands out."""
