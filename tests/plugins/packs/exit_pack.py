import sys

sys.exit("this pack calls sys.exit at import")
