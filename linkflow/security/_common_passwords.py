"""The most common passwords from public breach corpora, lower-cased, 8+ characters.

Shorter ones are refused by the length rule anyway. A password is refused when
it equals one of these or is one of these with digits or symbols around it
(``password123!``); the check runs offline.
"""

from __future__ import annotations

from typing import Final

COMMON_PASSWORDS: Final = frozenset(
    """
    password password1 password12 password123 password1234 passw0rd p@ssw0rd p@ssword
    12345678 123456789 1234567890 0123456789 12341234 11111111 00000000 88888888 87654321
    98765432 11223344 12121212 123123123 147258369 159753456 741852963 qwertyuiop qwerty123
    qwerty12 qwertyui 1qaz2wsx 1q2w3e4r 1q2w3e4r5t zaq12wsx asdfghjkl asdfasdf zxcvbnm1
    zxcvbnmm iloveyou iloveyou1 princess sunshine football baseball basketball superman
    batman123 starwars trustno1 whatever welcome1 welcome123 letmein1 letmein123 monkey123
    dragon123 master123 shadow123 michael1 jennifer charlie1 jordan23 computer internet
    abcdefgh abcd1234 abc12345 changeme changeme1 administrator admin123 admin1234
    adminadmin rootroot secret123 mypassword default1 freedom1 whatever1 hello123 helloworld
    chocolate butterfly elephant1 pokemon1 minecraft liverpool chelsea1 arsenal1 corvette
    mercedes ferrari1 mustang1 harley11 thomas12 hunter12 ranger12 samsung1 google123
    linkflow linkflow1 linkflow123 workflow workflow1 qwerty1234 aaaaaaaa zzzzzzzz
    1111111111 123qweasd qweasdzxc 11111111111
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# Words that make a password guessable when they are most of it.
COMMON_WORDS: Final = (
    "password",
    "passw0rd",
    "qwerty",
    "letmein",
    "welcome",
    "admin",
    "iloveyou",
    "linkflow",
    "monkey",
    "dragon",
    "abc123",
)

# Runs of keys or digits that are guessed first.
SEQUENCES: Final = (
    "0123456789",
    "9876543210",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
)
