#include <xmpp/xml/element.hpp>
#include <xmpp/xml/detail/ns_scope.hpp>
#include <xmpp/xml/writer.hpp>

#include "block_cache.hpp"
#include "ns_util.hpp"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace xmpp::xml {

namespace {

// pugixml takes its memory pages (~32 KB each: every element of more than a
// few nodes needs one) from these functions. A stanza's life allocates and
// frees several; straight from malloc, glibc trims and regrows the heap top
// around them (brk and fresh page faults per stanza: bench/iq_roundtrip's
// p50 doubled). Each thread keeps freed page-sized blocks for reuse, up to
// 32 (1 MiB). With 8, a burst of 64 stanzas in their handlers at once
// malloc'd most pages anew at the heap top, which glibc trimmed again when
// they were freed (four brk calls a burst: bench/iq_roundtrip's 64-in-flight
// figure lost 40%). 64 (2 MiB) showed in bench/idle_sessions' per-session
// figure (a full cache spread over its 1,000 sessions: +1.9 KB).
// The functions are process-wide, set before main() by this library's static
// initialization; every block carries its size in a header.
struct alignas(16) block_header {
    std::size_t size;
    std::size_t pad;
};
struct page_tag {
    static void free(void* p) noexcept { std::free(p); }
};
using page_cache = detail::block_cache<page_tag, 32>; // holds block_headers

void* pugi_allocate(std::size_t size) {
    // Only page-sized blocks are cached (see pugi_deallocate): a small one
    // (the copy of a frame's bytes) need not look through the cache.
    if (size >= 2048)
        if (auto b = page_cache::take(size, 2 * size); b.p) return static_cast<block_header*>(b.p) + 1;
    auto* h = static_cast<block_header*>(std::malloc(sizeof(block_header) + size));
    if (!h) return nullptr;
    h->size = size;
    return h + 1;
}

void pugi_deallocate(void* p) {
    if (!p) return;
    block_header* h = static_cast<block_header*>(p) - 1;
    if (h->size >= 4096 && h->size <= 64 * 1024 && page_cache::put(h, h->size)) return;
    std::free(h);
}

[[maybe_unused]] const bool pugi_allocator_installed =
    (pugi::set_memory_management_functions(pugi_allocate, pugi_deallocate), true);

using detail::declares;
using detail::prefix_of;
using detail::sv;

std::string_view lookup_from(pugi::xml_node n, const detail::ns_scope* scope,
                             std::string_view prefix) noexcept {
    if (prefix == "xml") return ns::xml;
    if (prefix == "xmlns") return ns::xmlns;
    for (; n.type() == pugi::node_element; n = n.parent())
        for (auto a = n.first_attribute(); a; a = a.next_attribute())
            if (declares(a.name(), prefix)) return sv(a.value());
    return scope ? scope->lookup(prefix) : std::string_view{};
}

// pugixml keeps values as C strings: a NUL would silently cut the value short.
// NUL is no XML character either, so refusing it loses nothing writable.
void check_no_nul(std::string_view v) {
    if (v.find('\0') != std::string_view::npos)
        throw std::invalid_argument("xmpp::xml: NUL character in XML text or attribute value");
}

bool is_declaration(const char* name) noexcept {
    return std::strncmp(name, "xmlns", 5) == 0 && (name[5] == 0 || name[5] == ':');
}

// A new declaration goes after the declarations and before the other
// attributes: ns() lookups (several per stanza) stop early.
void declare(pugi::xml_node n, std::string_view prefix, std::string_view uri) {
    std::string name = prefix.empty() ? std::string("xmlns") : "xmlns:" + std::string(prefix);
    pugi::xml_attribute first_other;
    for (auto a = n.first_attribute(); a; a = a.next_attribute()) {
        if (name == a.name()) {
            a.set_value(uri.data(), uri.size());
            return;
        }
        if (!first_other && !is_declaration(a.name())) first_other = a;
    }
    auto a = first_other ? n.insert_attribute_before(name.c_str(), first_other) : n.append_attribute(name.c_str());
    a.set_value(uri.data(), uri.size());
}

// Deep-copies `src` under `dest_parent` and declares on the copy every
// namespace the copy would otherwise lose or see rebound: those src inherited
// from its ancestors and its stream header.
// Declares on `target` (with `target_scope` around it) every namespace the
// tree of `src` (same shape as target's) inherited from outside itself and
// would otherwise lose or see rebound.
void declare_inherited(pugi::xml_node target, const detail::ns_scope* target_scope, node src) {
    thread_local std::vector<std::string_view> prefixes, declared; // scratch; this does not nest
    prefixes.clear();
    declared.clear();
    detail::inherited_prefixes(src.native(), prefixes, declared);
    for (auto p : prefixes) {
        auto want = src.lookup_ns(p);
        if (want.empty() && !p.empty()) continue; // unbound prefix: nothing to declare
        if (lookup_from(target, target_scope, p) != want) declare(target, p, want);
    }
}

pugi::xml_node copy_into(pugi::xml_node dest_parent, const detail::ns_scope* dest_scope, node src) {
    auto copy = dest_parent.append_copy(src.native());
    declare_inherited(copy, dest_scope, src);
    return copy;
}

} // namespace

std::string_view node::qname() const noexcept { return sv(node_.name()); }

std::string_view node::name() const noexcept {
    auto q = qname();
    auto c = q.find(':');
    return c == std::string_view::npos ? q : q.substr(c + 1);
}

std::string_view node::prefix() const noexcept { return prefix_of(qname()); }

std::string_view node::ns() const noexcept { return lookup_ns(prefix()); }

std::string_view node::lookup_ns(std::string_view p) const noexcept {
    return lookup_from(node_, scope_, p);
}

std::optional<std::string_view> node::find_attr(std::string_view q) const noexcept {
    for (auto a = node_.first_attribute(); a; a = a.next_attribute())
        if (sv(a.name()) == q) return sv(a.value());
    return std::nullopt;
}

std::size_t node::attr_count() const noexcept {
    std::size_t n = 0;
    for (auto a = node_.first_attribute(); a; a = a.next_attribute()) ++n;
    return n;
}

node node::child(std::string_view local, std::string_view ns_name) const noexcept {
    if (ns_name.empty()) ns_name = ns();
    for (auto c = node_.first_child(); c; c = c.next_sibling()) {
        if (c.type() != pugi::node_element) continue;
        node n(c, scope_);
        if (n.name() == local && n.ns() == ns_name) return n;
    }
    return {};
}

node node::first_child() const noexcept {
    for (auto c = node_.first_child(); c; c = c.next_sibling())
        if (c.type() == pugi::node_element) return node(c, scope_);
    return {};
}

node node::next_sibling() const noexcept {
    for (auto c = node_.next_sibling(); c; c = c.next_sibling())
        if (c.type() == pugi::node_element) return node(c, scope_);
    return {};
}

node node::parent() const noexcept {
    auto p = node_.parent();
    return p.type() == pugi::node_element ? node(p, scope_) : node();
}

std::string node::text() const {
    std::string out;
    for (auto c = node_.first_child(); c; c = c.next_sibling())
        if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out += c.value();
    return out;
}

std::optional<std::string_view> node::text_view() const noexcept {
    std::optional<std::string_view> found;
    for (auto c = node_.first_child(); c; c = c.next_sibling()) {
        if (c.type() != pugi::node_pcdata && c.type() != pugi::node_cdata) continue;
        if (found) return std::nullopt;
        found = sv(c.value());
    }
    return found.value_or(std::string_view{});
}

node node::append(std::string_view q, std::string_view ns_name) {
    auto c = node_.append_child(pugi::node_element);
    c.set_name(std::string(q).c_str());
    if (!ns_name.empty()) {
        auto p = prefix_of(q);
        if (lookup_from(c, scope_, p) != ns_name) declare(c, p, ns_name);
    }
    return node(c, scope_);
}

node node::append_copy(node other) { return node(copy_into(node_, scope_, other), scope_); }

node& node::set_attr(std::string_view q, std::string_view value) {
    check_no_nul(value);
    pugi::xml_attribute a;
    for (auto i = node_.first_attribute(); i; i = i.next_attribute())
        if (sv(i.name()) == q) { a = i; break; }
    if (!a) a = node_.append_attribute(std::string(q).c_str());
    a.set_value(value.data(), value.size());
    return *this;
}

bool node::remove_attr(std::string_view q) {
    for (auto a = node_.first_attribute(); a; a = a.next_attribute())
        if (sv(a.name()) == q) return node_.remove_attribute(a);
    return false;
}

node& node::set_text(std::string_view text) {
    node_.remove_children();
    return append_text(text);
}

node& node::append_text(std::string_view text) {
    check_no_nul(text);
    node_.append_child(pugi::node_pcdata).set_value(text.data(), text.size());
    return *this;
}

bool node::remove_child(node child) {
    if (child.native().parent() != node_) return false;
    return node_.remove_child(child.native());
}

// ---------------------------------------------------------------------------

// An empty element holds no document: no allocation (replies without a
// payload, moved-from values).
element::element() = default;

element::element(std::string_view q, std::string_view ns_name) : doc_(std::make_unique<pugi::xml_document>()) {
    auto r = doc_->append_child(pugi::node_element);
    r.set_name(std::string(q).c_str());
    if (!ns_name.empty()) declare(r, prefix_of(q), ns_name);
}

element::element(element&&) noexcept = default;
element& element::operator=(element&&) noexcept = default;
element::~element() = default;

element::element(const element& other) {
    if (other.doc_) {
        doc_ = std::make_unique<pugi::xml_document>();
        doc_->reset(*other.doc_);
    }
}

element& element::operator=(const element& other) {
    if (this != &other) {
        if (!other.doc_) {
            doc_.reset();
            return *this;
        }
        if (!doc_) doc_ = std::make_unique<pugi::xml_document>();
        doc_->reset(*other.doc_);
    }
    return *this;
}

element element::copy_of(node n) {
    element e;
    if (n) {
        e.doc_ = std::make_unique<pugi::xml_document>();
        copy_into(*e.doc_, nullptr, n);
    }
    return e;
}

element element::adopt(std::unique_ptr<pugi::xml_document> doc, const detail::ns_scope* scope) {
    element e;
    e.doc_ = std::move(doc);
    auto root = e.doc_->document_element();
    if (!root) return e;
    declare_inherited(root, nullptr, node(root, scope));
    return e;
}

element element::adopt_unprefixed(std::unique_ptr<pugi::xml_document> doc, std::string_view default_ns) {
    element e;
    e.doc_ = std::move(doc);
    auto root = e.doc_->document_element();
    // Unprefixed names only: a root without its own xmlns inherited the
    // stream's default namespace, and every other name resolves inside.
    // Declared first among the attributes: each ns() lookup on the tree
    // (several per stanza) then stops at the first attribute.
    if (!root || default_ns.empty()) return e;
    for (auto a = root.first_attribute(); a; a = a.next_attribute())
        if (declares(a.name(), {})) return e;
    root.prepend_attribute("xmlns").set_value(default_ns.data(), default_ns.size());
    return e;
}

node element::root() const noexcept {
    return doc_ ? node(doc_->document_element()) : node();
}

std::string element::to_string() const {
    std::string out;
    if (auto r = root()) write(r, out);
    return out;
}

} // namespace xmpp::xml
