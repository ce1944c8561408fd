"""Strip shared libraries in pure Python, so a layer is the same bytes on every build machine.

``strip_elf`` removes what the dynamic loader never reads (the static symbol table, its strings,
debug sections) and closes the dead gaps tools such as patchelf leave between loadable segments.
The loader maps only the loadable segments and reads only the program headers, the dynamic
section and the dynamic symbol table; those bytes are copied unchanged, each segment moved (if at
all) by a multiple of its alignment so its file offset still matches its address.
"""

from __future__ import annotations

import struct

_EHDR = struct.Struct("<HHIQQQIHHHHHH")  # the ELF header after e_ident
_PHDR = struct.Struct("<IIQQQQQQ")  # type flags offset vaddr paddr filesz memsz align
_SHDR = struct.Struct("<IIQQQQIIQQ")  # name type flags addr offset size link info align entsize
_S_NAME, _S_TYPE, _S_FLAGS, _S_OFFSET, _S_SIZE, _S_LINK, _S_INFO, _S_ALIGN = 0, 1, 2, 4, 5, 6, 7, 8
_P_OFFSET, _P_FILESZ, _P_ALIGN = 2, 5, 7

_SHT_SYMTAB, _SHT_STRTAB, _SHT_RELA, _SHT_NOBITS, _SHT_REL = 2, 3, 4, 8, 9
_SHT_GROUP, _SHT_SYMTAB_SHNDX = 17, 18
_SHF_ALLOC, _SHF_INFO_LINK = 0x2, 0x40


class _Unchanged(Exception):
    """The file is not laid out as expected; it is left as it is."""


def strip_elf(data: bytes) -> bytes:
    """``data`` without its symbol table, debug sections and dead gaps, when that is safe.

    Anything that is not a 64-bit little-endian ELF file laid out as expected comes back
    unchanged, as does a file stripping would not make smaller.
    """
    try:
        stripped = _strip(data)
    except (_Unchanged, struct.error, ValueError, IndexError):
        return data
    return stripped if len(stripped) < len(data) else data


def _strip(data: bytes) -> bytes:
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise _Unchanged
    header = list(_EHDR.unpack_from(data, 16))
    phoff, shoff = header[4], header[5]
    phentsize, phnum, shentsize, shnum, shstrndx = header[8:13]
    if phentsize != _PHDR.size or shentsize != _SHDR.size or not 0 < shstrndx < shnum:
        raise _Unchanged  # also rules out extended section numbering
    sections = [list(_SHDR.unpack_from(data, shoff + i * _SHDR.size)) for i in range(shnum)]
    segments = [list(_PHDR.unpack_from(data, phoff + i * _PHDR.size)) for i in range(phnum)]
    drop = _droppable(data, sections, shstrndx)
    kept = [i for i in range(shnum) if i not in drop]
    for i in kept:
        s = sections[i]
        info_is_index = s[_S_TYPE] in (_SHT_REL, _SHT_RELA) or s[_S_FLAGS] & _SHF_INFO_LINK
        if s[_S_TYPE] in (_SHT_GROUP, _SHT_SYMTAB_SHNDX) or s[_S_LINK] in drop:
            raise _Unchanged  # something kept still refers to what would go
        if info_is_index and s[_S_INFO] in drop:
            raise _Unchanged

    # What the loader reads, as [start, end, alignment]: the ELF and program headers, every
    # segment, every allocated section. Overlapping ranges move together as one block.
    ranges = [[0, 64, 1], [phoff, phoff + phnum * _PHDR.size, 8]]
    ranges += [[p[_P_OFFSET], p[_P_OFFSET] + p[_P_FILESZ], max(p[_P_ALIGN], 1)] for p in segments]
    ranges += [
        [s[_S_OFFSET], s[_S_OFFSET] + s[_S_SIZE], max(s[_S_ALIGN], 1)]
        for s in sections
        if s[_S_FLAGS] & _SHF_ALLOC and s[_S_TYPE] != _SHT_NOBITS
    ]
    blocks: list[list[int]] = []
    for start, end, align in sorted(r for r in ranges if r[1] > r[0]):
        if blocks and start < blocks[-1][1]:
            blocks[-1][1] = max(blocks[-1][1], end)
            blocks[-1][2] = max(blocks[-1][2], align)
        else:
            blocks.append([start, end, align])
    out = bytearray()
    moves: list[tuple[int, int, int]] = []  # (old start, old end, shift)
    for start, end, align in blocks:
        if align & (align - 1):
            raise _Unchanged  # alignments are powers of two
        new_start = len(out) + (start - len(out)) % align
        out.extend(b"\0" * (new_start - len(out)))
        out.extend(data[start:end])
        moves.append((start, end, start - new_start))

    def moved(offset: int) -> int:
        # inside a block; else at the end of one (an empty segment, .bss)
        for start, end, shift in moves:
            if start <= offset < end:
                return offset - shift
        for _, end, shift in moves:
            if offset == end:
                return offset - shift
        raise _Unchanged

    for segment in segments:
        segment[_P_OFFSET] = moved(segment[_P_OFFSET])
    index = {old: new for new, old in enumerate(kept)}
    table = bytearray()
    for old in kept:
        s = list(sections[old])
        if old == 0:
            pass
        elif s[_S_FLAGS] & _SHF_ALLOC:
            s[_S_OFFSET] = moved(s[_S_OFFSET])
        else:  # not loaded: copied after the blocks
            out.extend(b"\0" * (-len(out) % max(s[_S_ALIGN], 1)))
            if s[_S_TYPE] != _SHT_NOBITS:
                out.extend(data[s[_S_OFFSET] : s[_S_OFFSET] + s[_S_SIZE]])
                s[_S_OFFSET] = len(out) - s[_S_SIZE]
            else:
                s[_S_OFFSET] = len(out)
        s[_S_LINK] = index.get(s[_S_LINK], 0)
        if s[_S_TYPE] in (_SHT_REL, _SHT_RELA) or s[_S_FLAGS] & _SHF_INFO_LINK:
            s[_S_INFO] = index.get(s[_S_INFO], 0)
        table.extend(_SHDR.pack(*s))
    out.extend(b"\0" * (-len(out) % 8))
    header[4] = moved(phoff)
    header[5], header[11], header[12] = len(out), len(kept), index[shstrndx]
    out.extend(table)
    _EHDR.pack_into(out, 16, *header)
    for i, segment in enumerate(segments):
        _PHDR.pack_into(out, header[4] + i * _PHDR.size, *segment)
    return bytes(out)


def _droppable(data: bytes, sections: list[list[int]], shstrndx: int) -> set[int]:
    """The static symbol table, debug sections, and what only they use."""
    names = sections[shstrndx]

    def name(section: list[int]) -> str:
        start = names[_S_OFFSET] + section[_S_NAME]
        return data[start : data.index(b"\0", start)].decode("ascii", "replace")

    drop = {
        i
        for i, s in enumerate(sections)
        if i
        and not s[_S_FLAGS] & _SHF_ALLOC
        and (s[_S_TYPE] == _SHT_SYMTAB or name(s).startswith((".debug", ".zdebug")))
    }
    for i in sorted(drop):
        link = sections[i][_S_LINK]
        strings = sections[link]
        is_strings = strings[_S_TYPE] == _SHT_STRTAB and not strings[_S_FLAGS] & _SHF_ALLOC
        if link and link != shstrndx and is_strings:
            drop.add(link)
    for i, s in enumerate(sections):
        relocates_dropped = s[_S_TYPE] in (_SHT_REL, _SHT_RELA) and s[_S_INFO] in drop
        if relocates_dropped and not s[_S_FLAGS] & _SHF_ALLOC:
            drop.add(i)
    return drop
