#include <xmpp/xml/framer.hpp>

#include "block_cache.hpp"
#include "utf8.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace xmpp::xml {

namespace {

// Byte classes: a set bit means "the scan loop of that state must stop here".
enum : std::uint8_t {
    k_text = 1,  // character data
    k_attr = 2,  // attribute values
    k_tag = 4,   // inside tags, outside values
    k_cdata = 8, // CDATA sections
    k_ws = 16,   // XML white space
};

constexpr std::array<std::uint8_t, 256> make_table() {
    std::array<std::uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        std::uint8_t v = 0;
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') v |= k_text | k_attr | k_tag | k_cdata;
        if (c >= 0x80) v |= k_text | k_attr | k_tag | k_cdata;
        switch (c) {
        case '<': v |= k_text | k_attr | k_tag; break;
        case '&': v |= k_text | k_attr | k_tag; break;
        case '>': v |= k_text | k_tag; break;
        case '"':
        case '\'': v |= k_attr | k_tag; break;
        case '/': v |= k_tag; break;
        case ']': v |= k_cdata; break;
        case ' ':
        case '\t':
        case '\n':
        case '\r': v |= k_ws; break;
        default: break;
        }
        t[c] = v;
    }
    return t;
}

constexpr auto table = make_table();

bool name_start(unsigned char c) noexcept {
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

bool ref_char(unsigned char c) noexcept {
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == ':' || c == '#' || c >= 0x80;
}

// Skips 16 bytes at a time while none is one of Cs, a control character or
// non-ASCII; the byte loop of the state then takes over. Most of a stanza is
// plain ASCII between a few markup characters, so this is where time goes.
template <char... Cs>
inline std::size_t skip_plain(const unsigned char* b, std::size_t p, std::size_t e) noexcept {
#if defined(__SSE2__)
    const __m128i low = _mm_set1_epi8(0x20);
    while (e - p >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + p));
        __m128i m = _mm_cmplt_epi8(v, low); // < 0x20, and >= 0x80 (negative)
        ((m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(Cs)))), ...);
        const int bits = _mm_movemask_epi8(m);
        if (bits) return p + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(bits)));
        p += 16;
    }
#endif
    return p;
}

} // namespace

namespace {

// Freed input buffers of up to 16 KiB, a few per thread: a stream releases
// its buffer whenever it waits for input (an idle stream holds none), and a
// busy one would otherwise malloc, and free past glibc's tcache, on every
// read (bench/iq_roundtrip). At most 4 x 16 KiB per thread.
struct input_tag {
    static void free(void* p) noexcept { ::operator delete(p); }
};
using input_cache = detail::block_cache<input_tag, 4>;
constexpr std::size_t largest_cached = 16 * 1024;

} // namespace

void framer::input_buffer::grow(std::size_t want, std::size_t keep) {
    if (want <= cap_) return;
    // Not much larger than asked: the limits bound what a stream holds.
    const auto b = input_cache::take(want, want + want / 4);
    char* np = static_cast<char*>(b.p);
    std::size_t ncap = b.n;
    if (!np) {
        np = static_cast<char*>(::operator new(want));
        ncap = want;
    }
    if (keep) std::memcpy(np, p_, keep);
    release();
    p_ = np;
    cap_ = ncap;
}

void framer::input_buffer::release() noexcept {
    if (!p_) return;
    if (cap_ > largest_cached || !input_cache::put(p_, cap_)) ::operator delete(p_);
    p_ = nullptr;
    cap_ = 0;
}

framer::framer(struct limits l) : limits_(l) {}

std::span<char> framer::prepare(std::size_t n) {
    compact();
    if (buf_.size() - end_ < n) buf_.grow(std::max(end_ + n, buf_.size() * 3 / 2), end_);
    return {buf_.data() + end_, buf_.size() - end_};
}

void framer::commit(std::size_t n) noexcept { end_ += std::min(n, buf_.size() - end_); }

void framer::feed(std::string_view data) {
    if (data.empty()) return; // memcpy from a null data() would be undefined
    auto s = prepare(data.size());
    std::memcpy(s.data(), data.data(), data.size());
    commit(data.size());
}

void framer::compact() {
    // Keep the element being scanned; everything before it was consumed.
    const std::size_t base = in_element() ? elem_begin_ : pos_;
    if (base == 0) return;
    std::memmove(buf_.data(), buf_.data() + base, end_ - base);
    end_ -= base;
    pos_ -= base;
    elem_begin_ = elem_begin_ >= base ? elem_begin_ - base : 0;
    frame_begin_ = frame_end_ = 0;
}

void framer::reset() noexcept {
    pos_ = frame_end_;
    elem_begin_ = pos_;
    depth_ = attrs_ = 0;
    in_header_ = false;
    seen_decl_ = false;
    lex_ = headerless_ ? lex::between : lex::prolog;
    error_.clear();
    error_text_ = "";
}

void framer::clear() noexcept {
    end_ = pos_ = frame_begin_ = frame_end_ = elem_begin_ = 0;
    reset();
}

bool framer::shrink() noexcept {
    compact();
    if (end_ != 0) return false; // a partial element or unread input
    buf_.release();
    return true;
}

void framer::set_headerless(bool on) noexcept {
    headerless_ = on;
    reset();
}

frame_event framer::fail(boost::system::error_code& ec, stream_errc c, const char* text) {
    error_ = make_error_code(c);
    error_text_ = text;
    lex_ = lex::failed;
    ec = error_;
    return frame_event::need_more;
}

frame_event framer::next(boost::system::error_code& ec) {
    ec.clear();
    if (lex_ == lex::failed) {
        ec = error_;
        return frame_event::need_more;
    }
    return scan(ec);
}

// >0: length of a valid reference at p ('&') ending before e; 0: need more;
// <0: invalid (bad set).
int framer::reference(std::size_t p, std::size_t e, stream_errc& bad) const noexcept {
    const auto* b = reinterpret_cast<const unsigned char*>(buf_.data());
    constexpr std::size_t max_len = 32;
    std::size_t q = p + 1;
    for (;; ++q) {
        if (q == e) return 0;
        if (b[q] == ';') break;
        if (!ref_char(b[q])) {
            bad = stream_errc::not_well_formed; // a bare '&'
            return -1;
        }
        if (q - p > max_len) {
            bad = b[p + 1] == '#' ? stream_errc::not_well_formed : stream_errc::restricted_xml;
            return -1;
        }
    }
    std::string_view body(buf_.data() + p + 1, q - p - 1);
    bad = stream_errc::not_well_formed;
    if (body.empty()) return -1;
    if (body[0] == '#') {
        // Character reference: must name an XML Char (XML 1.0 4.1 WFC: Legal Character).
        std::uint32_t cp = 0;
        bool hex = body.size() > 1 && body[1] == 'x';
        auto digits = body.substr(hex ? 2 : 1);
        if (digits.empty() || digits.size() > 8) return -1;
        for (char c : digits) {
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
            else return -1;
            cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(d);
        }
        if (!detail::is_xml_char(cp)) return -1;
        return static_cast<int>(q - p + 1);
    }
    if (body == "amp" || body == "lt" || body == "gt" || body == "quot" || body == "apos")
        return static_cast<int>(q - p + 1);
    // Any other entity would need a DTD to declare it (RFC 6120 11.1).
    bad = stream_errc::restricted_xml;
    return -1;
}

frame_event framer::scan(boost::system::error_code& ec) {
    const auto* b = reinterpret_cast<const unsigned char*>(buf_.data());
    std::size_t p = pos_;
    // Inside an element nothing past max_element_bytes is ever looked at, so
    // that the verdict on an oversized element does not depend on how its
    // bytes were split into reads.
    std::size_t e = end_;

    auto need_more = [&]() -> frame_event {
        pos_ = p;
        if (in_element() && end_ - elem_begin_ > limits_.max_element_bytes)
            return fail(ec, stream_errc::policy_violation,
                        in_header_ ? "stream header exceeds max_element_bytes"
                                   : "element exceeds max_element_bytes");
        return frame_event::need_more;
    };
    // Validates the non-ASCII or control byte at p; false when the caller must return.
    auto check_char = [&](frame_event& out) -> bool {
        int n = detail::xml_char_len(b + p, b + e);
        if (n > 0) {
            p += static_cast<std::size_t>(n);
            return true;
        }
        out = n == 0 ? need_more()
                     : fail(ec, stream_errc::not_well_formed,
                            b[p] < 0x80 ? "control character not allowed in XML" : "invalid UTF-8");
        return false;
    };
    auto check_ref = [&](frame_event& out) -> bool {
        stream_errc bad{};
        int n = reference(p, e, bad);
        if (n > 0) {
            p += static_cast<std::size_t>(n);
            return true;
        }
        if (n == 0) out = need_more();
        else out = fail(ec, bad, bad == stream_errc::restricted_xml ? "entity reference (RFC 6120 11.1)"
                                                                     : "malformed character or entity reference");
        return false;
    };
    auto emit = [&](frame_event ev) {
        // A frame that arrived whole is checked here; a partial one in need_more.
        if (p - elem_begin_ > limits_.max_element_bytes)
            return fail(ec, stream_errc::policy_violation,
                        ev == frame_event::stream_open ? "stream header exceeds max_element_bytes"
                                                       : "element exceeds max_element_bytes");
        frame_begin_ = elem_begin_;
        frame_end_ = pos_ = p;
        return ev;
    };

    frame_event out{};
    for (;;) {
        e = in_element() ? std::min(end_, elem_begin_ + limits_.max_element_bytes + 1) : end_;
        switch (lex_) {
        case lex::failed: ec = error_; return frame_event::need_more;

        case lex::closed:
            while (p < e && (table[b[p]] & k_ws)) ++p;
            frame_begin_ = frame_end_ = p;
            if (p == e) return need_more();
            return fail(ec, stream_errc::not_well_formed, "data after the stream end tag");

        case lex::prolog:
        case lex::between: {
            while (p < e && (table[b[p]] & k_ws)) ++p;
            frame_begin_ = frame_end_ = p; // white space between elements is consumed
            if (p == e) return need_more();
            if (b[p] != '<')
                return fail(ec, lex_ == lex::prolog ? stream_errc::not_well_formed : stream_errc::bad_format,
                            lex_ == lex::prolog ? "text before the stream header"
                                                : "character data at stream level");
            elem_begin_ = p;
            if (p + 1 >= e) return need_more();
            const unsigned char c = b[p + 1];
            if (c == '/') {
                if (lex_ == lex::prolog || headerless_)
                    return fail(ec, stream_errc::not_well_formed, "end tag with no open element");
                depth_ = 0;
                lex_ = lex::end_tag;
                p += 2;
            } else if (c == '?') {
                if (lex_ == lex::prolog && !seen_decl_) {
                    if (e - p < 6) return need_more();
                    if (std::memcmp(b + p, "<?xml", 5) == 0 && (table[b[p + 5]] & k_ws)) {
                        lex_ = lex::xml_decl;
                        p += 6;
                        continue;
                    }
                }
                return fail(ec, stream_errc::restricted_xml, "processing instruction (RFC 6120 11.1)");
            } else if (c == '!') {
                if (p + 2 >= e) return need_more();
                if (b[p + 2] == '-') return fail(ec, stream_errc::restricted_xml, "comment (RFC 6120 11.1)");
                if (b[p + 2] == '[') return fail(ec, stream_errc::bad_format, "CDATA section at stream level");
                return fail(ec, stream_errc::restricted_xml, "DTD (RFC 6120 11.1)");
            } else if (name_start(c)) {
                in_header_ = lex_ == lex::prolog;
                depth_ = 1;
                attrs_ = 0;
                lex_ = lex::in_tag;
                p += 1;
            } else {
                return fail(ec, stream_errc::not_well_formed, "'<' not followed by a name");
            }
            break;
        }

        case lex::xml_decl: {
            // <?xml version='1.0' encoding='UTF-8'?>: only UTF-8 is allowed (RFC 6120 11.6).
            while (p + 1 < e && !(b[p] == '?' && b[p + 1] == '>')) {
                if (b[p] == '<') return fail(ec, stream_errc::not_well_formed, "malformed XML declaration");
                if (b[p] < 0x20 || b[p] >= 0x80) {
                    if (!check_char(out)) return out;
                } else {
                    ++p;
                }
            }
            if (p + 1 >= e) return need_more();
            std::string_view decl(buf_.data() + elem_begin_, p - elem_begin_);
            if (auto i = decl.find("encoding"); i != std::string_view::npos) {
                auto q = decl.find_first_of("'\"", i);
                auto q2 = q == std::string_view::npos ? q : decl.find(decl[q], q + 1);
                if (q2 == std::string_view::npos)
                    return fail(ec, stream_errc::not_well_formed, "malformed XML declaration");
                auto enc = decl.substr(q + 1, q2 - q - 1);
                if (enc.size() != 5 || (enc[0] | 0x20) != 'u' || (enc[1] | 0x20) != 't' ||
                    (enc[2] | 0x20) != 'f' || enc[3] != '-' || enc[4] != '8')
                    return fail(ec, stream_errc::unsupported_encoding, "encoding other than UTF-8");
            }
            p += 2;
            seen_decl_ = true;
            lex_ = lex::prolog;
            break;
        }

        case lex::in_tag: {
            p = skip_plain<'"', '\'', '>', '/', '<', '&'>(b, p, e);
            while (p < e && !(table[b[p]] & k_tag)) ++p;
            if (p == e) return need_more();
            const unsigned char c = b[p];
            if (c == '"' || c == '\'') {
                if (++attrs_ > limits_.max_attributes)
                    return fail(ec, stream_errc::policy_violation, "too many attributes on one element");
                quote_ = static_cast<char>(c);
                lex_ = lex::attr_value;
                ++p;
            } else if (c == '>') {
                ++p;
                if (in_header_) {
                    // Remember the stream element's name for the end tag.
                    std::size_t n = elem_begin_ + 1;
                    while (n < p && !(table[b[n]] & k_ws) && b[n] != '>') ++n;
                    stream_qname_len_ = n - elem_begin_ - 1;
                    if (stream_qname_len_ >= sizeof(stream_qname_))
                        return fail(ec, stream_errc::bad_format, "stream element name too long");
                    std::memcpy(stream_qname_, buf_.data() + elem_begin_ + 1, stream_qname_len_);
                    in_header_ = false;
                    depth_ = 0;
                    lex_ = lex::between;
                    return emit(frame_event::stream_open);
                }
                lex_ = lex::text;
            } else if (c == '/') {
                if (p + 1 >= e) return need_more();
                if (b[p + 1] != '>') return fail(ec, stream_errc::not_well_formed, "'/' inside a tag");
                if (in_header_) return fail(ec, stream_errc::bad_format, "empty stream element");
                p += 2;
                if (--depth_ == 0) {
                    lex_ = lex::between;
                    return emit(frame_event::element);
                }
                lex_ = lex::text;
            } else if (c == '<' || c == '&') {
                return fail(ec, stream_errc::not_well_formed, "'<' or '&' inside a tag");
            } else if (!check_char(out)) {
                return out;
            }
            break;
        }

        case lex::attr_value: {
            p = skip_plain<'"', '\'', '<', '&'>(b, p, e);
            while (p < e && !(table[b[p]] & k_attr)) ++p;
            if (p == e) return need_more();
            const unsigned char c = b[p];
            if (c == '"' || c == '\'') {
                if (c == static_cast<unsigned char>(quote_)) lex_ = lex::in_tag;
                ++p;
            } else if (c == '<') {
                return fail(ec, stream_errc::not_well_formed, "'<' in an attribute value");
            } else if (c == '&') {
                if (!check_ref(out)) return out;
            } else if (!check_char(out)) {
                return out;
            }
            break;
        }

        case lex::text: {
            p = skip_plain<'<', '&', '>'>(b, p, e);
            while (p < e && !(table[b[p]] & k_text)) ++p;
            if (p == e) return need_more();
            const unsigned char c = b[p];
            if (c == '<') {
                if (p + 1 >= e) return need_more();
                const unsigned char n = b[p + 1];
                if (n == '/') {
                    lex_ = lex::end_tag;
                    p += 2;
                } else if (n == '!') {
                    if (e - p < 4) return need_more();
                    if (b[p + 2] == '-')
                        return fail(ec, b[p + 3] == '-' ? stream_errc::restricted_xml : stream_errc::not_well_formed,
                                    "comment (RFC 6120 11.1)");
                    if (b[p + 2] == '[') {
                        if (e - p < 9) return need_more();
                        if (std::memcmp(b + p, "<![CDATA[", 9) != 0)
                            return fail(ec, stream_errc::not_well_formed, "malformed CDATA section");
                        lex_ = lex::cdata;
                        p += 9;
                    } else {
                        return fail(ec, stream_errc::restricted_xml, "DTD (RFC 6120 11.1)");
                    }
                } else if (n == '?') {
                    return fail(ec, stream_errc::restricted_xml, "processing instruction (RFC 6120 11.1)");
                } else if (name_start(n)) {
                    if (++depth_ > limits_.max_depth)
                        return fail(ec, stream_errc::policy_violation, "elements nested deeper than max_depth");
                    attrs_ = 0;
                    lex_ = lex::in_tag;
                    p += 1;
                } else {
                    return fail(ec, stream_errc::not_well_formed, "'<' not followed by a name");
                }
            } else if (c == '&') {
                if (!check_ref(out)) return out;
            } else if (c == '>') {
                // "]]>" may not appear in character data (XML 1.0 2.4).
                if (b[p - 1] == ']' && b[p - 2] == ']')
                    return fail(ec, stream_errc::not_well_formed, "']]>' in character data");
                ++p;
            } else if (!check_char(out)) {
                return out;
            }
            break;
        }

        case lex::end_tag: {
            while (p < e && !(table[b[p]] & k_tag)) ++p;
            if (p == e) return need_more();
            const unsigned char c = b[p];
            if (c == '>') {
                ++p;
                if (depth_ == 0) {
                    // The stream end tag must match the header (XML 1.0 WFC: Element Type Match).
                    std::size_t n = p - 1;
                    while (n > elem_begin_ + 2 && (table[b[n - 1]] & k_ws)) --n;
                    std::string_view name(buf_.data() + elem_begin_ + 2, n - elem_begin_ - 2);
                    if (name != stream_qname())
                        return fail(ec, stream_errc::not_well_formed, "end tag does not match the stream header");
                    lex_ = lex::closed;
                    return emit(frame_event::stream_close);
                }
                if (--depth_ == 0) {
                    lex_ = lex::between;
                    return emit(frame_event::element);
                }
                lex_ = lex::text;
            } else if (c < 0x80 && !(c < 0x20)) {
                return fail(ec, stream_errc::not_well_formed, "unexpected character in an end tag");
            } else if (!check_char(out)) {
                return out;
            }
            break;
        }

        case lex::cdata: {
            while (p < e && !(table[b[p]] & k_cdata)) ++p;
            if (p == e) return need_more();
            if (b[p] == ']') {
                if (e - p < 3) return need_more();
                if (b[p + 1] == ']' && b[p + 2] == '>') {
                    lex_ = lex::text;
                    p += 3;
                } else {
                    ++p;
                }
            } else if (!check_char(out)) {
                return out;
            }
            break;
        }
        }
    }
}

} // namespace xmpp::xml
