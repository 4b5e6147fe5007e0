raise AssertionError("must not be imported: its requirements are missing")
