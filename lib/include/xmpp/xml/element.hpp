// XML elements: a non-owning handle (xml::node) and an owning tree (xml::element).
//
// Both sit on pugixml. A node handed out by xml::reader refers into the reader's
// reused document and is valid until the reader is fed again; copy it into an
// xml::element (element::copy_of) to keep it.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <pugixml.hpp>

namespace xmpp::xml {

namespace detail {
struct ns_scope;
}

class element;

/// Well-known namespace names.
namespace ns {
inline constexpr std::string_view stream = "http://etherx.jabber.org/streams";
inline constexpr std::string_view client = "jabber:client";
inline constexpr std::string_view server = "jabber:server";
inline constexpr std::string_view component = "jabber:component:accept";
inline constexpr std::string_view streams_errors = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr std::string_view stanzas_errors = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 7395 3.3.2: <open/> and <close/> on a WebSocket.
inline constexpr std::string_view framing = "urn:ietf:params:xml:ns:xmpp-framing";
inline constexpr std::string_view xml = "http://www.w3.org/XML/1998/namespace";
inline constexpr std::string_view xmlns = "http://www.w3.org/2000/xmlns/";
} // namespace ns

/// A handle to one XML element: cheap to copy, does not own memory.
///
/// Namespace resolution follows "Namespaces in XML 1.0": `ns()` is the namespace
/// bound to the element's prefix (or the default namespace) by declarations on
/// the element, its ancestors, and finally the stream header that carried it.
///
/// Mutating members change the underlying document; they are meant for trees
/// owned by an xml::element. Thread safety: as for the owning document.
class node {
public:
    node() = default;
    node(pugi::xml_node n, const detail::ns_scope* scope = nullptr) noexcept
        : node_(n), scope_(scope) {}

    explicit operator bool() const noexcept { return node_.type() == pugi::node_element; }

    /// Qualified name as written, e.g. "stream:features".
    std::string_view qname() const noexcept;
    /// Local name, without prefix.
    std::string_view name() const noexcept;
    /// Prefix, or "" when unprefixed.
    std::string_view prefix() const noexcept;
    /// Resolved namespace name, "" when none is in scope.
    std::string_view ns() const noexcept;
    /// Namespace bound to `prefix` ("" for the default namespace) at this element.
    std::string_view lookup_ns(std::string_view prefix) const noexcept;
    /// True when local name and resolved namespace match.
    bool is(std::string_view local, std::string_view ns_name) const noexcept {
        return name() == local && ns() == ns_name;
    }

    /// Attribute by qualified name as written ("type", "xml:lang"); nullopt if absent.
    std::optional<std::string_view> find_attr(std::string_view qname) const noexcept;
    /// Attribute value by qualified name, or "" when absent.
    std::string_view attr(std::string_view qname) const noexcept {
        return find_attr(qname).value_or(std::string_view{});
    }
    /// Number of attributes, namespace declarations included.
    std::size_t attr_count() const noexcept;

    /// First child element with this local name and namespace (namespace "" =
    /// same namespace as this element), or an empty node.
    node child(std::string_view local, std::string_view ns_name = {}) const noexcept;
    /// First child element of any name, or an empty node.
    node first_child() const noexcept;
    /// Next sibling element, or an empty node.
    node next_sibling() const noexcept;
    /// Parent element, or an empty node at the root.
    node parent() const noexcept;

    /// Character data directly inside this element (text and CDATA children,
    /// concatenated, entities already decoded).
    std::string text() const;
    /// Like text(), without copying, when the element holds at most one text
    /// child (the common case); nullopt when the text is split in several nodes.
    std::optional<std::string_view> text_view() const noexcept;

    // -- building ---------------------------------------------------------
    /// Append a child element. When `ns_name` is given and differs from the
    /// namespace in scope for the child's prefix, an xmlns declaration is added.
    node append(std::string_view qname, std::string_view ns_name = {});
    /// Append a deep copy of `other` (from any document), declaring on the copy
    /// every namespace it inherited from its own ancestors or stream.
    node append_copy(node other);
    /// Set (add or replace) an attribute. Throws std::invalid_argument when
    /// `value` holds a NUL character (not an XML character; pugixml would
    /// silently truncate it).
    node& set_attr(std::string_view qname, std::string_view value);
    /// Remove an attribute; true when it was present.
    bool remove_attr(std::string_view qname);
    /// Replace all children by a single text node (NUL: as set_attr).
    node& set_text(std::string_view text);
    /// Append a text node (NUL: as set_attr).
    node& append_text(std::string_view text);
    /// Remove a child element; true when it was a child.
    bool remove_child(node child);

    /// The pugixml node, for what this API does not cover.
    pugi::xml_node native() const noexcept { return node_; }
    const detail::ns_scope* scope() const noexcept { return scope_; }

    friend bool operator==(const node& a, const node& b) noexcept { return a.node_ == b.node_; }

private:
    pugi::xml_node node_;
    const detail::ns_scope* scope_ = nullptr;
};

/// Range over the child elements of a node: `for (xml::node c : children(n))`.
class child_range {
public:
    class iterator {
    public:
        using value_type = node;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(node n) : n_(n) {}
        node operator*() const { return n_; }
        iterator& operator++() { n_ = n_.next_sibling(); return *this; }
        iterator operator++(int) { auto t = *this; ++*this; return t; }
        friend bool operator==(const iterator& a, const iterator& b) { return a.n_ == b.n_; }
    private:
        node n_;
    };
    explicit child_range(node parent) : first_(parent.first_child()) {}
    iterator begin() const { return iterator(first_); }
    iterator end() const { return iterator(); }
private:
    node first_;
};
inline child_range children(node n) { return child_range(n); }

/// An owning XML element tree (movable, deep-copyable).
///
/// The root always declares the namespaces it uses, so an element is
/// self-contained: it can be kept, copied and written on any stream.
class element {
public:
    /// An empty element (root() is an empty node).
    element();
    /// A root element `qname` in namespace `ns_name` (declared with xmlns or
    /// xmlns:prefix when not empty).
    element(std::string_view qname, std::string_view ns_name);
    element(element&&) noexcept;
    element& operator=(element&&) noexcept;
    element(const element& other);
    element& operator=(const element& other);
    ~element();

    /// Deep copy of `n`, with the namespaces `n` inherited (from its ancestors
    /// and its stream header) declared on the new root.
    static element copy_of(node n);

    node root() const noexcept;
    explicit operator bool() const noexcept { return static_cast<bool>(root()); }

    /// Serialized form (see xml/writer.hpp), for logs and tests.
    std::string to_string() const;

private:
    friend class reader;
    // Takes `doc` (a parsed stanza) as it is and declares on its root what it
    // inherited from `scope` (reader::take_element).
    static element adopt(std::unique_ptr<pugi::xml_document> doc, const detail::ns_scope* scope);
    // The same for a tree with no prefixed name (the reader saw none): only
    // the default namespace can be inherited; no walk over the tree.
    static element adopt_unprefixed(std::unique_ptr<pugi::xml_document> doc, std::string_view default_ns);

    std::unique_ptr<pugi::xml_document> doc_;
};

} // namespace xmpp::xml
