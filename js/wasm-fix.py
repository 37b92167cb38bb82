#!/usr/bin/env python3
"""Works around binaryen 108 (Debian bookworm's wasm-opt) for wasm-bindgen output.

    wasm-fix.py strip-names FILE   drop the custom `name` section (in place)
    wasm-fix.py fix-exports FILE   point table exports back at their table (in place)

binaryen 108 writes the `__wbindgen_externrefs` export (wasm-bindgen's externref
table) as table 0, the funcref table, whatever the input said; the module then fails to
instantiate ("function-typed object must be null ... or a Wasm function object").
`fix-exports` re-points every table export whose name is `__wbindgen_externrefs` at the
module's externref table. Newer binaryen releases do not need it; it is a no-op then.
"""
import sys


def leb(data, i):
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def uleb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sections(data):
    i = 8
    while i < len(data):
        sid = data[i]
        size, body = leb(data, i + 1)
        yield sid, data[i:body + size], data[body:body + size]
        i = body + size


def strip_names(data):
    out = bytearray(data[:8])
    for sid, whole, body in sections(data):
        if sid == 0:
            n, p = leb(body, 0)
            if body[p:p + n] == b'name':
                continue
        out += whole
    return bytes(out)


def fix_exports(data):
    tables = []
    for sid, _, body in sections(data):
        if sid == 2:  # imports: imported tables come first in the index space
            count, p = leb(body, 0)
            for _ in range(count):
                n, p = leb(body, p)
                p += n
                n, p = leb(body, p)
                p += n
                kind = body[p]
                p += 1
                if kind == 0:
                    _, p = leb(body, p)
                elif kind == 1:
                    tables.append(body[p])
                    p += 1
                    flag = body[p]
                    p += 1
                    _, p = leb(body, p)
                    if flag & 1:
                        _, p = leb(body, p)
                elif kind == 2:
                    flag = body[p]
                    p += 1
                    _, p = leb(body, p)
                    if flag & 1:
                        _, p = leb(body, p)
                elif kind == 3:
                    p += 2
                else:
                    p += 1
                    _, p = leb(body, p)
        if sid == 4:
            count, p = leb(body, 0)
            for _ in range(count):
                tables.append(body[p])
                p += 1
                flag = body[p]
                p += 1
                _, p = leb(body, p)
                if flag & 1:
                    _, p = leb(body, p)
    externref = [i for i, t in enumerate(tables) if t == 0x6F]
    if not externref:
        return data
    out = bytearray(data[:8])
    for sid, whole, body in sections(data):
        if sid != 7:
            out += whole
            continue
        count, p = leb(body, 0)
        new = bytearray(uleb(count))
        for _ in range(count):
            n, q = leb(body, p)
            name = body[q:q + n]
            q += n
            kind = body[q]
            index, r = leb(body, q + 1)
            if kind == 1 and name == b'__wbindgen_externrefs':
                index = externref[0]
            new += uleb(n) + name + bytes([kind]) + uleb(index)
            p = r
        out += bytes([7]) + uleb(len(new)) + new
    return bytes(out)


if __name__ == '__main__':
    command, path = sys.argv[1], sys.argv[2]
    data = open(path, 'rb').read()
    data = strip_names(data) if command == 'strip-names' else fix_exports(data)
    open(path, 'wb').write(data)
