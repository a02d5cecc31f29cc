// Reference pieces of the SCRAM fuzzers (fuzz_scram, fuzz_scram_server),
// written apart from the library so that the fuzzers check it instead of
// repeating it: strict base64 (RFC 4648 4), the attr-val grammar of RFC 5802
// 7, UTF-8 as RFC 3629 spells it, and HMAC straight from the TLS library.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace scram_ref {

using bytes = std::vector<std::uint8_t>;

// --- reference base64 (RFC 4648 4), strict, written apart from the library's ---

inline int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

inline std::optional<bytes> ref_b64_decode(std::string_view s) {
    if (s.size() % 4 != 0) return std::nullopt;
    bytes out;
    for (std::size_t i = 0; i < s.size(); i += 4) {
        int n = 4; // significant characters in this quantum
        if (i + 4 == s.size() && s[i + 3] == '=') n = s[i + 2] == '=' ? 2 : 3;
        std::uint32_t bits = 0;
        for (int k = 0; k < n; ++k) {
            const int v = b64_value(s[i + k]);
            if (v < 0) return std::nullopt;
            bits = bits << 6 | static_cast<std::uint32_t>(v);
        }
        if (n == 4) {
            out.push_back(static_cast<std::uint8_t>(bits >> 16));
            out.push_back(static_cast<std::uint8_t>(bits >> 8));
            out.push_back(static_cast<std::uint8_t>(bits));
        } else if (n == 3) { // 18 bits: 16 of data, 2 that must be zero
            if (bits & 3) return std::nullopt;
            out.push_back(static_cast<std::uint8_t>(bits >> 10));
            out.push_back(static_cast<std::uint8_t>(bits >> 2));
        } else { // 12 bits: 8 of data, 4 that must be zero
            if (bits & 15) return std::nullopt;
            out.push_back(static_cast<std::uint8_t>(bits >> 4));
        }
    }
    return out;
}

inline std::string ref_b64_encode(const bytes& in) {
    static constexpr char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, in.size() - i);
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? in[i + k] : 0u);
        for (std::size_t k = 0; k < 4; ++k) out += k <= n ? abc[(v >> (18 - 6 * k)) & 63] : '=';
    }
    return out;
}


// --- RFC 5802 7 grammar --------------------------------------------------------------

inline bool printable_nonce(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    return true;
}

inline std::vector<std::string_view> split_commas(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    for (;;) {
        const std::size_t c = s.find(',', pos);
        if (c == std::string_view::npos) {
            out.push_back(s.substr(pos));
            return out;
        }
        out.push_back(s.substr(pos, c - pos));
        pos = c + 1;
    }
}

// UTF8-char (RFC 3629 4), spelled out as its ABNF: the byte ranges of
// each lead byte's second byte, then continuation bytes.
inline bool utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        unsigned lo = 0x80, hi = 0xbf;
        std::size_t tail = 0;
        if (b < 0x80) tail = 0;
        else if (b >= 0xc2 && b <= 0xdf) tail = 1;
        else if (b == 0xe0) tail = 2, lo = 0xa0;
        else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) tail = 2;
        else if (b == 0xed) tail = 2, hi = 0x9f;
        else if (b == 0xf0) tail = 3, lo = 0x90;
        else if (b >= 0xf1 && b <= 0xf3) tail = 3;
        else if (b == 0xf4) tail = 3, hi = 0x8f;
        else return false;
        if (s.size() - i <= tail) return false;
        for (std::size_t k = 1; k <= tail; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xbf)) return false;
        }
        i += tail + 1;
    }
    return true;
}

// attr-val = ALPHA "=" value; value = 1*value-char; value-char is UTF8-char
// but NUL and ',' (value-safe-char / "=").
inline bool attr_val(std::string_view part) {
    if (part.size() < 3 || part[1] != '=') return false;
    const char a = part[0];
    if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z'))) return false;
    return part.find('\0') == std::string_view::npos && utf8(part);
}

// --- HMAC (RFC 2104) from the TLS library -------------------------------------------

inline bytes hmac(const EVP_MD* md, const bytes& key, std::string_view data) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned n = 0;
    if (!HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const std::uint8_t*>(data.data()),
               data.size(), out.data(), &n)) {
        std::fprintf(stderr, "scram_ref: HMAC failed\n");
        std::abort();
    }
    out.resize(n);
    return out;
}

} // namespace scram_ref
