// libFuzzer target: the strict base64 codec (lib/src/detail/base64.cpp,
// RFC 4648 4) on arbitrary bytes.
//
// Invariants checked beyond "no crash, no sanitizer report":
//  - decode agrees with a separate strict decoder written here;
//  - canonical: when decode(x) succeeds, encode(decode(x)) == x exactly;
//  - encode(x) is well-formed (length, alphabet, padding), agrees with a
//    separate encoder, and decodes back to x;
//  - the SASL wrappers (sasl::detail::base64_*) give the same answers.
//
// Built by the `fuzz` option (README "Fuzzing"):
//   build-fuzz/fuzz/fuzz_base64 -max_total_time=600 /tmp/fb fuzz/corpus/base64
#include "detail/base64.hpp" // private: lib/src is on the include path
#include "sasl/detail.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "fuzz_base64: check failed, line %d: %s\n", __LINE__, #cond); \
            std::abort();                                                               \
        }                                                                               \
    } while (0)

constexpr char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
    for (int i = 0; i < 64; ++i)
        if (abc[i] == c) return i;
    return -1;
}

// Bit by bit: 6 bits per character into a bit stream; padding only at the
// end, as "=" or "==", completing a 4-character quantum; leftover bits zero.
std::optional<std::string> ref_decode(std::string_view s) {
    std::size_t data_chars = s.size();
    while (data_chars > 0 && s[data_chars - 1] == '=') --data_chars;
    const std::size_t pad = s.size() - data_chars;
    if (s.size() % 4 != 0 || pad > 2) return std::nullopt;
    // The data characters of the last quantum: 4 - pad, never just one.
    if (pad > 0 && data_chars % 4 != 4 - pad) return std::nullopt;
    std::string out;
    std::uint32_t acc = 0;
    int nbits = 0;
    for (std::size_t i = 0; i < data_chars; ++i) {
        const int v = value_of(s[i]);
        if (v < 0) return std::nullopt;
        acc = (acc << 6 | static_cast<std::uint32_t>(v)) & 0xffff;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out += static_cast<char>((acc >> nbits) & 0xff);
        }
    }
    if ((acc & ((1u << nbits) - 1)) != 0) return std::nullopt; // non-zero pad bits
    return out;
}

std::string ref_encode(std::string_view in) {
    std::string out;
    std::uint32_t acc = 0;
    int nbits = 0;
    for (char c : in) {
        acc = (acc << 8 | static_cast<unsigned char>(c)) & 0xffff;
        nbits += 8;
        while (nbits >= 6) {
            nbits -= 6;
            out += abc[(acc >> nbits) & 63];
        }
    }
    if (nbits > 0) out += abc[(acc << (6 - nbits)) & 63];
    while (out.size() % 4 != 0) out += '=';
    return out;
}

void check_encoding(std::string_view in) {
    const std::string e = xmpp::detail::base64_encode(in);
    CHECK(e.size() == (in.size() + 2) / 3 * 4);
    CHECK(e == ref_encode(in));
    std::size_t pad = 0;
    while (pad < e.size() && e[e.size() - 1 - pad] == '=') ++pad;
    CHECK(pad == (3 - in.size() % 3) % 3);
    const auto back = xmpp::detail::base64_decode(e);
    CHECK(back && *back == in);
    // The SASL layer's byte wrappers are the same codec.
    CHECK(xmpp::sasl::detail::base64_encode(in) == e);
    const auto bytes_back = xmpp::sasl::detail::base64_decode(e);
    CHECK(bytes_back && std::string(bytes_back->begin(), bytes_back->end()) == in);
}

void check_decoding(std::string_view s) {
    const auto d = xmpp::detail::base64_decode(s);
    CHECK(d == ref_decode(s));
    const auto bd = xmpp::sasl::detail::base64_decode(s);
    CHECK(bd.has_value() == d.has_value());
    if (!d) return;
    CHECK(std::string(bd->begin(), bd->end()) == *d);
    CHECK(d->size() <= s.size() / 4 * 3);
    // Strict and canonical: one text per byte string.
    CHECK(xmpp::detail::base64_encode(*d) == s);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view s(reinterpret_cast<const char*>(data), size);
    check_decoding(s);
    check_encoding(s);
    return 0;
}
