"""userdb: -u lookups in the image's /etc/passwd and /etc/group."""

import pytest

from rootless import userdb
from rootless.errors import RootlessError

pytestmark = pytest.mark.nosubuid

FILES = {
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n# c\nbad:x:z:1::/:\n",
    "/etc/group": b"root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\nstaff:x:50:other\n",
}


def rf(path):
    return FILES.get(path)


def test_names_numbers_and_groups():
    assert userdb.resolve("", rf) == userdb.ExecUser(0, 0, (), "/root")
    assert userdb.resolve("app", rf) == userdb.ExecUser(1000, 1000, (10, 29), "/home/app")
    assert userdb.resolve("1000", rf) == userdb.ExecUser(1000, 1000, (10, 29), "/home/app")
    assert userdb.resolve("4242", rf) == userdb.ExecUser(4242, 0, (), "/")
    assert userdb.resolve("4242:7", rf) == userdb.ExecUser(4242, 7, (), "/")
    assert userdb.resolve("app:staff", rf) == userdb.ExecUser(1000, 50, (), "/home/app")
    assert userdb.resolve("app:0", rf).gid == 0


def test_unknown_names_are_errors_with_hints():
    with pytest.raises(RootlessError, match="find user `nosuch`") as e:
        userdb.resolve("nosuch", rf)
    assert e.value.hint
    with pytest.raises(RootlessError, match="find group `nogroup`"):
        userdb.resolve("app:nogroup", rf)


def test_no_passwd_file():
    assert userdb.resolve("7:8", lambda p: None) == userdb.ExecUser(7, 8, (), "/")
    with pytest.raises(RootlessError):
        userdb.resolve("app", lambda p: None)
