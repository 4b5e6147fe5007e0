"""String utilities with ComfyUI's node names and input names (``utils/string``)."""

from __future__ import annotations

from .api import Boolean, Combo, Int, Node, Output, String
from .limits import check_string_length


class StringConcatenate(Node):
    display_name = "Concatenate"
    category = "utils/string"
    description = "Joins string_a and string_b with the delimiter between them."
    inputs = (String("string_a", multiline=True), String("string_b", multiline=True), String("delimiter", ""))
    outputs = (Output("STRING"),)

    def run(self, string_a: str, string_b: str, delimiter: str) -> str:
        # a chain of concatenations doubles the length at every step
        check_string_length(len(string_a) + len(delimiter) + len(string_b), "the concatenated string")
        return delimiter.join((string_a, string_b))


class StringSubstring(Node):
    display_name = "Substring"
    category = "utils/string"
    description = "The characters of the string from start up to (not including) end."
    inputs = (String("string", multiline=True), Int("start"), Int("end"))
    outputs = (Output("STRING"),)

    def run(self, string: str, start: int, end: int) -> str:
        return string[start:end]


class StringLength(Node):
    display_name = "Length"
    category = "utils/string"
    description = "The number of characters in the string."
    inputs = (String("string", multiline=True),)
    outputs = (Output("INT", "length"),)

    def run(self, string: str) -> int:
        return len(string)


class StringReplace(Node):
    display_name = "Replace"
    category = "utils/string"
    description = "Replaces every occurrence of find with replace."
    inputs = (String("string", multiline=True), String("find", multiline=True), String("replace", multiline=True))
    outputs = (Output("STRING"),)

    def run(self, string: str, find: str, replace: str) -> str:
        # the result's length is known from a count: an empty find matches between every pair of
        # characters, so a 1 MB string and a 4 kB replacement would make 4 GB
        count = string.count(find)
        check_string_length(
            len(string) + count * (len(replace) - len(find)),
            "the replaced string",
            f"input 'find' occurs {count:,} times in input 'string'.",
        )
        return string.replace(find, replace)


class StringCompare(Node):
    display_name = "Compare"
    category = "utils/string"
    description = "True when string_a equals, starts with or ends with string_b."
    inputs = (
        String("string_a", multiline=True),
        String("string_b", multiline=True),
        Combo("mode", ["Starts With", "Ends With", "Equal"]),
        Boolean("case_sensitive", True),
    )
    outputs = (Output("BOOLEAN"),)

    def run(self, string_a: str, string_b: str, mode: str, case_sensitive: bool) -> bool:
        if not case_sensitive:
            string_a, string_b = string_a.lower(), string_b.lower()
        if mode == "Equal":
            return string_a == string_b
        if mode == "Starts With":
            return string_a.startswith(string_b)
        return string_a.endswith(string_b)


class StringContains(Node):
    display_name = "Contains"
    category = "utils/string"
    description = "True when the string contains the substring."
    inputs = (String("string", multiline=True), String("substring", multiline=True), Boolean("case_sensitive", True))
    outputs = (Output("BOOLEAN", "contains"),)

    def run(self, string: str, substring: str, case_sensitive: bool) -> bool:
        if case_sensitive:
            return substring in string
        return substring.lower() in string.lower()


NODES = [StringConcatenate, StringSubstring, StringLength, StringReplace, StringCompare, StringContains]
