#!/usr/bin/env python3
"""Post-processing of the SDK's wasm module (in place).

    wasm-fix.py stub-panics FILE   make core's panic-message formatting trap at once
    wasm-fix.py fix-exports FILE   point table exports back at their table
    wasm-fix.py strip-names FILE   drop the custom `name` section

`stub-panics` is `panic_immediate_abort` for stable Rust, at the wasm level. The
browser build's panic handler traps without looking at the message (src/wasm_rt.rs),
yet core's panicking paths still build those messages (`Debug` for `char` and ranges,
`Display` for integers, Unicode printability tables) before calling it: about a sixth
of the module. This replaces the bodies of core's `panicking::*` functions, its
formatting functions (`core::fmt::*`, `Debug`/`Display` impls) and its out-of-line
failure paths (`slice_error_fail*`, `slice_index_fail`, `unwrap_failed`, ...) with
`unreachable`. Nothing in the SDK formats anything: those functions only ever run on
the way to a panic, which traps either way, so behaviour is unchanged; wasm-opt then
drops what only they called. It needs the `name` section (run it before wasm-opt).

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


STUB_PATTERNS = [
    r'^core(\[[0-9a-f]+\])?::panicking::',
    r'^core(\[[0-9a-f]+\])?::fmt::',
    r'^<core(\[[0-9a-f]+\])?::fmt::',
    r' as core(\[[0-9a-f]+\])?::fmt::(Debug|Display|Write)>::',
    r'^core(\[[0-9a-f]+\])?::unicode::printable::',
    r'^<char>::escape_debug',
    r'^core(\[[0-9a-f]+\])?::str::slice_error_fail',
    r'^core(\[[0-9a-f]+\])?::slice::index::slice_(start_|end_)?index_(len_)?fail',
    r'^core(\[[0-9a-f]+\])?::option::(unwrap|expect)_failed',
    r'^core(\[[0-9a-f]+\])?::result::unwrap_failed',
    r'^core(\[[0-9a-f]+\])?::cell::panic_already_(mutably_)?borrowed',
    r'^__rustc(\[[0-9a-f]+\])?::__rdl_alloc_error_handler',
]


def function_names(data):
    names = {}
    for sid, _, body in sections(data):
        if sid != 0:
            continue
        n, p = leb(body, 0)
        if body[p:p + n] != b'name':
            continue
        p += n
        while p < len(body):
            sub = body[p]
            size, p = leb(body, p + 1)
            end = p + size
            if sub == 1:
                count, q = leb(body, p)
                for _ in range(count):
                    idx, q = leb(body, q)
                    ln, q = leb(body, q)
                    names[idx] = body[q:q + ln].decode('utf-8', 'replace')
                    q += ln
            p = end
    return names


def imported_functions(data):
    count_funcs = 0
    for sid, _, body in sections(data):
        if sid != 2:
            continue
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
                count_funcs += 1
            elif kind in (1, 2):
                if kind == 1:
                    p += 1
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
    return count_funcs


def stub_panics(data):
    import re
    patterns = [re.compile(x) for x in STUB_PATTERNS]
    names = function_names(data)
    if not names:
        sys.exit('stub-panics: the module has no name section')
    first = imported_functions(data)
    out = bytearray(data[:8])
    stubbed = []
    for sid, whole, body in sections(data):
        if sid != 10:
            out += whole
            continue
        count, p = leb(body, 0)
        new = bytearray(uleb(count))
        for i in range(count):
            size, q = leb(body, p)
            name = names.get(first + i, '')
            if any(x.search(name) for x in patterns):
                new += uleb(3) + b'\x00\x00\x0b'  # no locals; unreachable; end
                stubbed.append(name)
            else:
                new += body[p:q + size]
            p = q + size
        out += bytes([10]) + uleb(len(new)) + new
    print(f'stub-panics: {len(stubbed)} functions now trap at once', file=sys.stderr)
    return bytes(out)


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
    data = {'strip-names': strip_names, 'fix-exports': fix_exports, 'stub-panics': stub_panics}[command](data)
    open(path, 'wb').write(data)
