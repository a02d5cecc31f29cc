#include <xmpp/xml/writer.hpp>

#include "ns_util.hpp"
#include "utf8.hpp"

#include <array>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace xmpp::xml {

namespace {

class xml_category_impl final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "xmpp.xml"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
        case errc::invalid_utf8: return "text or attribute value is not valid UTF-8";
        case errc::invalid_char: return "character not allowed in XML 1.0";
        case errc::invalid_name: return "invalid XML name";
        case errc::unsupported_node: return "comment, processing instruction or DTD node (RFC 6120 11.1)";
        case errc::unbound_prefix: return "namespace prefix not bound to a namespace";
        case errc::duplicate_attribute: return "attribute repeated (Namespaces in XML 1.0 6.3)";
        }
        return "unknown xml error";
    }
};

using detail::prefix_of;
using detail::sv;

// XML Name / QName check: ASCII rules exactly, non-ASCII accepted when valid
// UTF-8 (the NameChar ranges cover nearly all of them).
bool valid_qname_slow(std::string_view q) noexcept;

// ASCII name classes: 1 may start a name, 2 may continue one.
constexpr std::array<unsigned char, 128> name_class = [] {
    std::array<unsigned char, 128> t{};
    for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = 3;
    t['_'] = 3;
    for (int c = '0'; c <= '9'; ++c) t[c] = 2;
    t['-'] = t['.'] = 2;
    return t;
}();

// Every name of every element and attribute written goes through here: the
// usual one, ASCII without a colon, by table; anything else the full way.
bool valid_qname(std::string_view q) noexcept {
    if (q.empty()) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(q.data());
    const auto* e = p + q.size();
    if (*p >= 0x80 || !(name_class[*p] & 1)) return valid_qname_slow(q);
    for (++p; p < e; ++p)
        if (*p >= 0x80 || !(name_class[*p] & 2)) return valid_qname_slow(q);
    return true;
}

bool valid_qname_slow(std::string_view q) noexcept {
    if (q.empty()) return false;
    auto start = [](unsigned char c) { return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c >= 0x80; };
    auto part = [&](unsigned char c) { return start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; };
    std::size_t colons = 0;
    bool at_start = true;
    const auto* p = reinterpret_cast<const unsigned char*>(q.data());
    const auto* e = p + q.size();
    while (p < e) {
        unsigned char c = *p;
        if (c == ':') {
            if (at_start || ++colons > 1) return false;
            at_start = true;
            ++p;
            continue;
        }
        if (at_start ? !start(c) : !part(c)) return false;
        at_start = false;
        if (c >= 0x80) {
            int n = detail::xml_char_len(p, e);
            if (n <= 0) return false;
            p += n;
        } else {
            ++p;
        }
    }
    return !at_start;
}

// Bytes an escape() run may copy as they are: printable ASCII other than
// the markup characters (in attribute values also not the quotes).
template <bool Attr>
constexpr std::array<bool, 256> plain_table() {
    std::array<bool, 256> t{};
    for (int c = 0x20; c < 0x80; ++c) t[c] = true;
    t['&'] = t['<'] = t['>'] = false;
    if (Attr) t['"'] = t['\''] = false;
    return t;
}

template <bool Attr>
boost::system::error_code escape(std::string_view in, std::string& out) {
    static constexpr auto plain = plain_table<Attr>();
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    const auto* e = p + in.size();
    const auto* run = p;
    auto flush = [&] { out.append(reinterpret_cast<const char*>(run), p - run); };
    while (p < e) {
        if (plain[*p]) { // the common case: a table look-up per byte
            ++p;
            continue;
        }
        unsigned char c = *p;
        const char* rep = nullptr;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': if (Attr) rep = "&quot;"; break;
        case '\'': if (Attr) rep = "&apos;"; break;
        case '\t': if (Attr) rep = "&#9;"; break;
        case '\n': if (Attr) rep = "&#10;"; break;
        case '\r': rep = "&#13;"; break; // would be normalized away as raw text
        default: break;
        }
        if (rep) {
            flush();
            out += rep;
            run = ++p;
            continue;
        }
        if (c >= 0x20 && c < 0x80) { ++p; continue; }
        int n = detail::xml_char_len(p, e);
        if (n <= 0) {
            // A well-formed sequence for U+FFFE/U+FFFF is a bad character, not bad UTF-8.
            bool nonchar = c == 0xEF && e - p >= 3 && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF);
            return make_error_code(c < 0x80 || nonchar ? errc::invalid_char : errc::invalid_utf8);
        }
        p += n;
    }
    flush();
    return {};
}

struct writer {
    std::string& out;
    // Declarations in scope while writing (a per-thread scratch vector: no
    // allocation per stanza).
    detail::ns_decls& scope;

    std::string_view lookup(std::string_view p) const noexcept { return detail::innermost(scope, p).value_or(""); }

    bool bound(std::string_view p) const noexcept {
        if (p.empty() || p == "xml") return true;
        return p != "xmlns" && !lookup(p).empty();
    }

    boost::system::error_code attr(std::string_view name, std::string_view value) {
        if (!valid_qname(name)) return make_error_code(errc::invalid_name);
        return checked_attr(name, value);
    }

    // `name` already checked.
    boost::system::error_code checked_attr(std::string_view name, std::string_view value) {
        // One append for the name part (three small appends cost more than
        // the copy: every attribute written pays this).
        char head[64];
        if (name.size() + 3 <= sizeof head) {
            head[0] = ' ';
            std::memcpy(head + 1, name.data(), name.size());
            head[name.size() + 1] = '=';
            head[name.size() + 2] = '\'';
            out.append(head, name.size() + 3);
        } else {
            out += ' ';
            out += name;
            out += "='";
        }
        if (auto ec = escape<true>(value, out)) return ec;
        out += '\'';
        return {};
    }

    // Attributes of the element being written, each measured once (pugixml
    // hands out C strings). A stack shared by the recursion.
    struct attr_view {
        std::string_view name, value, prefix;
    };
    std::vector<attr_view>& attrs;

    // The reader's uniqueness rules: no attribute twice, and no namespaced
    // attribute twice under two prefixes bound to one namespace.
    boost::system::error_code check_unique(std::size_t first) const {
        for (std::size_t i = first; i < attrs.size(); ++i) {
            const auto& a = attrs[i];
            for (std::size_t j = i + 1; j < attrs.size(); ++j) {
                const auto& b = attrs[j];
                if (a.name == b.name) return make_error_code(errc::duplicate_attribute);
                if (a.prefix.empty() || b.prefix.empty() || a.prefix == "xmlns" || b.prefix == "xmlns") continue;
                if (a.name.substr(a.prefix.size()) == b.name.substr(b.prefix.size()) && !lookup(a.prefix).empty() &&
                    lookup(a.prefix) == lookup(b.prefix))
                    return make_error_code(errc::duplicate_attribute);
            }
        }
        return {};
    }

    // `extra` are declarations added on this element (the root only).
    boost::system::error_code element(pugi::xml_node n,
                                      const std::vector<std::pair<std::string, std::string>>& extra,
                                      std::string_view omit_default) {
        auto qname = sv(n.name());
        if (!valid_qname(qname)) return make_error_code(errc::invalid_name);
        const auto mark = scope.size();
        const auto first = attrs.size();
        out += '<';
        out += qname;
        for (auto& [p, uri] : extra) {
            scope.emplace_back(p, uri);
            if (auto ec = attr(p.empty() ? std::string("xmlns") : "xmlns:" + p, uri)) return ec;
        }
        for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
            const auto an = sv(a.name());
            const auto av = sv(a.value());
            attrs.push_back({an, av, prefix_of(an)});
            if (an == "xmlns") {
                scope.emplace_back(std::string_view{}, av);
            } else if (an.starts_with("xmlns:")) {
                if (av.empty()) return make_error_code(errc::unbound_prefix);
                scope.emplace_back(an.substr(6), av);
            }
        }
        if (auto ec = check_unique(first)) return ec;
        for (std::size_t i = first; i < attrs.size(); ++i) {
            const auto [an, av, p] = attrs[i];
            if (an == "xmlns" && !omit_default.empty() && av == omit_default) continue;
            if (!valid_qname(an)) return make_error_code(errc::invalid_name);
            if (!p.empty() && p != "xmlns" && !bound(p)) return make_error_code(errc::unbound_prefix);
            if (auto ec = checked_attr(an, av)) return ec;
        }
        attrs.resize(first);
        if (!bound(prefix_of(qname))) return make_error_code(errc::unbound_prefix);
        // Empty text nodes (e.g. from "<![CDATA[]]>") carry nothing: writing
        // them as <a></a> would not read back the same as <a/>.
        auto c = n.first_child();
        while (c && (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) && !*c.value())
            c = c.next_sibling();
        if (!c) {
            out += "/>";
        } else {
            out += '>';
            for (; c; c = c.next_sibling()) {
                switch (c.type()) {
                case pugi::node_element:
                    if (auto ec = element(c, {}, {})) return ec;
                    break;
                case pugi::node_pcdata:
                case pugi::node_cdata:
                    if (auto ec = escape<false>(sv(c.value()), out)) return ec;
                    break;
                default:
                    return make_error_code(errc::unsupported_node);
                }
            }
            out += "</";
            out += qname;
            out += '>';
        }
        scope.resize(mark);
        return {};
    }
};

} // namespace

const boost::system::error_category& xml_category() noexcept {
    static const xml_category_impl cat;
    return cat;
}

boost::system::error_code escape_text(std::string_view in, std::string& out) { return escape<false>(in, out); }
boost::system::error_code escape_attr(std::string_view in, std::string& out) { return escape<true>(in, out); }

boost::system::error_code write(node n, std::string& out, std::string_view stream_ns) {
    if (!n) return make_error_code(errc::invalid_name);
    const auto rollback = out.size();
    // A stanza is rarely shorter: one reservation instead of the doublings.
    if (out.capacity() - out.size() < 256) out.reserve(out.size() + 256);
    // Scratch space kept per thread (write() does not nest), in one
    // thread_local: each costs a __tls_get_addr call in a shared library.
    struct scratch {
        detail::ns_decls scope;
        std::vector<std::string_view> prefixes, declared;
        std::vector<writer::attr_view> attrs;
    };
    thread_local scratch tls;
    auto& [scope, prefixes, declared, attrs] = tls;
    scope.clear();
    attrs.clear();
    prefixes.clear();
    declared.clear();
    // Declare on the root what the element inherited from outside itself.
    // A document's own root with no stream scope and its own default
    // namespace (what element("iq", ns) builds) inherits nothing: a prefix it
    // does not declare is unbound, which the writer reports anyway.
    std::vector<std::pair<std::string, std::string>> extra;
    const bool self_contained = n.native().parent().type() != pugi::node_element && !n.scope() &&
                                n.native().attribute("xmlns");
    if (!self_contained) detail::inherited_prefixes(n.native(), prefixes, declared);
    for (auto p : prefixes) {
        auto uri = n.lookup_ns(p);
        if (p.empty()) {
            if (uri != stream_ns) extra.emplace_back(std::string(), std::string(uri));
        } else if (!uri.empty()) {
            extra.emplace_back(std::string(p), std::string(uri));
        }
    }
    writer w{out, scope, attrs};
    if (!stream_ns.empty()) w.scope.emplace_back(std::string_view{}, stream_ns);
    if (auto ec = w.element(n.native(), extra, stream_ns)) {
        out.resize(rollback);
        return ec;
    }
    return {};
}

std::string to_string(node n) {
    std::string s;
    if (write(n, s)) s.clear();
    return s;
}

void write_stream_header(const stream_header& h, std::string& out, bool xml_decl) {
    if (xml_decl) out += "<?xml version='1.0'?>";
    out += '<';
    out += h.qname;
    auto put = [&](std::string_view name, std::string_view value) {
        if (value.empty()) return;
        out += ' ';
        out += name;
        out += "='";
        (void)escape_attr(value, out); // header values are ours or already checked
        out += '\'';
    };
    put("from", h.from);
    put("to", h.to);
    put("id", h.id);
    put("version", h.version);
    put("xml:lang", h.lang);
    put("xmlns", h.default_ns);
    auto sp = prefix_of(h.qname);
    bool stream_declared = false;
    for (auto& [p, uri] : h.prefixes) {
        put("xmlns:" + p, uri);
        stream_declared |= (p == sp);
    }
    if (!stream_declared) put(sp.empty() ? std::string("xmlns") : "xmlns:" + std::string(sp), ns::stream);
    out += '>';
}

void write_stream_close(const stream_header& h, std::string& out) {
    out += "</";
    out += h.qname;
    out += '>';
}

} // namespace xmpp::xml
