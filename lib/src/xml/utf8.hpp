// UTF-8 and XML 1.0 character checks shared by the framer and the writer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xmpp::xml::detail {

/// Length of the UTF-8 sequence at `p` if it is valid and encodes an XML 1.0
/// Char (XML 1.0 section 2.2: no surrogates, no U+FFFE/U+FFFF, no C0 controls
/// but tab, LF and CR); 0 when [p, e) ends inside a sequence that could still
/// be valid; -1 when invalid. Requires p < e.
inline int xml_char_len(const unsigned char* p, const unsigned char* e) noexcept {
    const unsigned c = p[0];
    if (c < 0x80) return (c >= 0x20 || c == 0x09 || c == 0x0A || c == 0x0D) ? 1 : -1;
    int n;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) { n = 3; lo = 0xA0; }
    else if (c == 0xED) { n = 3; hi = 0x9F; }           // no surrogates
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) { n = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) { n = 4; hi = 0x8F; }           // <= U+10FFFF
    else return -1;
    const std::ptrdiff_t avail = e - p;
    for (int i = 1; i < n; ++i) {
        if (i >= avail) return 0;
        const unsigned b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -1;
    }
    // U+FFFE and U+FFFF are not XML characters.
    if (c == 0xEF && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF)) return -1;
    return n;
}

/// Whether a code point is an XML 1.0 Char.
inline bool is_xml_char(std::uint32_t cp) noexcept {
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

} // namespace xmpp::xml::detail
