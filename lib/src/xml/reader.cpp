#include <xmpp/xml/reader.hpp>

#include "ns_util.hpp"

#include <cstring>
#include <string>

namespace xmpp::xml {

namespace {

std::string_view sv(const char* s) noexcept { return s ? std::string_view(s) : std::string_view{}; }

std::string_view prefix_of(std::string_view q) noexcept {
    auto c = q.find(':');
    return c == std::string_view::npos ? std::string_view{} : q.substr(0, c);
}

// Namespaces in XML 1.0 section 4: QName = (Prefix ':')? LocalPart, both
// non-empty, at most one colon. pugixml accepts any number of colons.
// The local part must start like a name (pugixml checks only the first byte
// of the whole name, so "p:0x" would pass).
bool valid_qname_colons(const char* name, std::size_t len, const char* colon) noexcept {
    if (!colon) return true;
    if (colon == name || colon + 1 == name + len) return false;
    const auto c = static_cast<unsigned char>(colon[1]);
    if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c >= 0x80)) return false;
    return std::memchr(colon + 1, ':', static_cast<std::size_t>(name + len - colon - 1)) == nullptr;
}

} // namespace

reader::reader(struct limits l) : framer_(l) {}

void reader::reset() noexcept {
    framer_.reset();
    current_ = {};
    error_.clear();
    error_text_ = {};
}

void reader::clear() noexcept {
    framer_.clear();
    reset();
}

bool reader::shrink() noexcept {
    if (!framer_.shrink()) return false;
    current_ = {};
    doc_.reset(); // frees pugixml's pages
    // The scratch vectors stay unless an unusual element grew them: freed
    // and regrown on every idle turn, they cost three allocations a stanza.
    constexpr std::size_t keep = 64;
    if (decls_.capacity() > keep) decltype(decls_)().swap(decls_);
    if (marks_.capacity() > keep) decltype(marks_)().swap(marks_);
    if (names_.capacity() > keep) decltype(names_)().swap(names_);
    return true;
}

void reader::set_headerless(const stream_header& context) {
    header_ = context;
    scope_.default_ns = context.default_ns;
    scope_.prefixes = context.prefixes;
    framer_.set_headerless(true);
    reset();
}

boost::system::error_code reader::fail(stream_errc c, const char* text) {
    error_ = make_error_code(c);
    error_text_ = text;
    return error_;
}

frame_event reader::next(boost::system::error_code& ec) {
    ec.clear();
    if (error_) {
        ec = error_;
        return frame_event::need_more;
    }
    current_ = {};
    auto ev = framer_.next(ec);
    if (ec) {
        error_ = ec;
        error_text_ = framer_.error_text();
        return ev;
    }
    switch (ev) {
    case frame_event::stream_open: ec = parse_header(framer_.frame()); break;
    case frame_event::element: ec = parse_element(framer_.frame()); break;
    default: break;
    }
    return ec ? frame_event::need_more : ev;
}

boost::system::error_code reader::parse_header(std::span<char> frame) {
    // Parse the start tag as an empty element: "<stream:stream ...>" + "/>".
    std::string tag(frame.data(), frame.size() - 1);
    tag += "/>";
    pugi::xml_document hdoc;
    if (!hdoc.load_buffer(tag.data(), tag.size(), parse_options, pugi::encoding_utf8))
        return fail(stream_errc::not_well_formed, "malformed stream header");
    auto root = hdoc.document_element();
    header_ = {};
    scope_.clear();
    header_.qname = sv(root.name());
    for (auto a = root.first_attribute(); a; a = a.next_attribute()) {
        auto n = sv(a.name());
        auto v = sv(a.value());
        if (n == "xmlns") header_.default_ns = v;
        else if (n.starts_with("xmlns:")) header_.prefixes.emplace_back(n.substr(6), v);
        else if (n == "from") header_.from = v;
        else if (n == "to") header_.to = v;
        else if (n == "id") header_.id = v;
        else if (n == "version") header_.version = v;
        else if (n == "xml:lang") header_.lang = v;
    }
    scope_.default_ns = header_.default_ns;
    scope_.prefixes = header_.prefixes;
    if (auto ec = validate(root)) return ec;
    node hn(root, nullptr);
    // RFC 6120 4.9.3.10: the stream element must be in the streams namespace.
    if (hn.name() != "stream") return fail(stream_errc::bad_format, "root element is not <stream>");
    if (hn.ns() != ns::stream) return fail(stream_errc::invalid_namespace, "stream element not in the streams namespace");
    return {};
}

boost::system::error_code reader::parse_element(std::span<char> frame) {
    // A copy of the bytes, not in place: the tree must not point into the
    // framer's buffer when take_element() hands it over.
    if (!doc_) doc_ = std::make_unique<pugi::xml_document>();
    auto res = doc_->load_buffer(frame.data(), frame.size(), parse_options, pugi::encoding_utf8);
    if (!res) return fail(stream_errc::not_well_formed, res.description());
    auto root = doc_->document_element();
    if (auto ec = validate(root)) return ec;
    current_ = node(root, &scope_);
    return {};
}

element reader::take_element() {
    if (!current_ || !doc_) return {};
    current_ = {};
    // A root with its own xmlns needs nothing declared (no search for it).
    if (!prefixed_)
        return element::adopt_unprefixed(std::move(doc_), root_declares_default_ ? std::string_view{} : scope_.lookup({}));
    return element::adopt(std::move(doc_), &scope_);
}

// Namespaces in XML 1.0 constraints and unique attributes (XML 1.0 3.1), which
// pugixml does not check. On the path of every element: names are measured
// once and prefixes are looked up only when a name has one.
boost::system::error_code reader::validate(pugi::xml_node root) {
    decls_.clear();
    marks_.clear();
    prefixed_ = false;
    root_declares_default_ = false;
    root_ns_ = {};
    // Namespace of prefix `p` at the element being checked: its own and its
    // ancestors' declarations, then the stream header's.
    auto resolve = [&](std::string_view p) -> std::string_view {
        if (p == "xml") return ns::xml;
        return detail::innermost(decls_, p).value_or(scope_.lookup(p));
    };
    auto bound = [&](std::string_view p) { return !resolve(p).empty(); };
    pugi::xml_node n = root;
    while (n) {
        marks_.push_back(decls_.size());
        names_.clear();
        bool prefixed = false;
        for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
            const char* an = a.name();
            const std::size_t len = std::strlen(an);
            const std::string_view name(an, len);
            for (auto other : names_)
                if (other.size() == len && std::memcmp(other.data(), an, len) == 0)
                    return fail(stream_errc::not_well_formed, "duplicate attribute");
            names_.push_back(name);
            const char* colon = static_cast<const char*>(std::memchr(an, ':', len));
            if (!valid_qname_colons(an, len, colon))
                return fail(stream_errc::not_well_formed, "attribute name is not a QName");
            if (an[0] == 'x' && name.starts_with("xmlns")) {
                if (len == 5) {
                    decls_.emplace_back(std::string_view{}, sv(a.value()));
                    root_declares_default_ |= n == root;
                    continue;
                }
                if (colon == an + 5) {
                    auto p = name.substr(6);
                    auto v = sv(a.value());
                    if (v.empty() || p == "xmlns" || (p == "xml") != (v == ns::xml) || v == ns::xmlns)
                        return fail(stream_errc::not_well_formed, "illegal namespace declaration");
                    decls_.emplace_back(p, v);
                    continue;
                }
            }
            prefixed |= colon != nullptr;
        }
        prefixed_ |= prefixed;
        const char* en = n.name();
        if (const char* colon = std::strchr(en, ':')) {
            prefixed_ = true;
            if (!valid_qname_colons(en, std::strlen(en), colon))
                return fail(stream_errc::not_well_formed, "element name is not a QName");
            std::string_view ep(en, static_cast<std::size_t>(colon - en));
            if (ep == "xmlns" || !bound(ep))
                return fail(stream_errc::bad_namespace_prefix, "element prefix not bound to a namespace");
            if (n == root) root_ns_ = resolve(ep);
        } else if (n == root) {
            root_ns_ = resolve({});
        }
        if (prefixed) {
            for (std::size_t i = 0; i < names_.size(); ++i) {
                auto ap = prefix_of(names_[i]);
                if (ap.empty() || ap == "xmlns") continue;
                if (!bound(ap))
                    return fail(stream_errc::bad_namespace_prefix, "attribute prefix not bound to a namespace");
                // Namespaces in XML 1.0 6.3: p:x and q:x with p and q bound to
                // one namespace are the same attribute twice.
                const auto local = names_[i].substr(ap.size() + 1);
                for (std::size_t j = i + 1; j < names_.size(); ++j) {
                    auto bp = prefix_of(names_[j]);
                    if (bp.empty() || bp == "xmlns" || names_[j].substr(bp.size() + 1) != local) continue;
                    if (resolve(ap) == resolve(bp))
                        return fail(stream_errc::not_well_formed, "attribute repeated under two prefixes");
                }
            }
        }
        // Next element in document order.
        pugi::xml_node next;
        for (auto c = n.first_child(); c; c = c.next_sibling())
            if (c.type() == pugi::node_element) { next = c; break; }
        if (next) { n = next; continue; }
        for (;;) {
            decls_.resize(marks_.back());
            marks_.pop_back();
            if (n == root) return {};
            for (next = n.next_sibling(); next && next.type() != pugi::node_element; next = next.next_sibling()) {}
            if (next) { n = next; break; }
            n = n.parent();
        }
    }
    return {};
}

element parse_element(std::string_view text, boost::system::error_code& ec, const stream_header& context,
                      const struct limits& l) {
    reader r(l);
    r.set_headerless(context);
    r.feed(text);
    auto ev = r.next(ec);
    if (ec) return {};
    if (ev != frame_event::element) {
        ec = make_error_code(stream_errc::bad_format); // nothing, or an incomplete element
        return {};
    }
    element out = element::copy_of(r.element());
    if (r.next(ec) != frame_event::need_more || ec || r.get_framer().buffered() != 0) {
        if (!ec) ec = make_error_code(stream_errc::bad_format); // more than one element
        return {};
    }
    return out;
}

} // namespace xmpp::xml
