// XML stream reader: the framer plus a pugixml parse of each frame, with
// namespace resolution against the stream header.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/system/error_code.hpp>
#include <pugixml.hpp>

#include <xmpp/xml/detail/ns_scope.hpp>
#include <xmpp/xml/element.hpp>
#include <xmpp/xml/framer.hpp>
#include <xmpp/xml/stream_header.hpp>

namespace xmpp::xml {

/// Reads an XMPP XML stream (sans-io): bytes in, stream header, elements and
/// stream end out.
///
/// Each top-level element is parsed into a pugixml document of its own (a
/// copy of the frame's bytes, so that take_element() can hand the tree over
/// without copying nodes; the document is reused when nobody took it).
/// Namespaces are
/// resolved with the declarations of the stream header as the outermost scope,
/// so a stanza sent without xmlns is in the stream's content namespace. After
/// parsing, every element and attribute prefix must be bound
/// (bad-namespace-prefix), attributes must be unique and namespace
/// declarations legal (not-well-formed).
///
/// Errors are stream_errc codes; error_text() says what was wrong. After an
/// error the reader stays failed until reset(). Thread safety: one object must
/// not be used concurrently.
class reader {
public:
    explicit reader(struct limits l = {});

    /// Writable space for at least `n` bytes of input (invalidates element()).
    std::span<char> prepare(std::size_t n) { return framer_.prepare(n); }
    /// Make `n` bytes written into the prepare() area readable.
    void commit(std::size_t n) noexcept { framer_.commit(n); }
    /// Copy input in.
    void feed(std::string_view data) { framer_.feed(data); }

    /// Next event from buffered input; need_more when input is exhausted or on
    /// error (then `ec` is set).
    frame_event next(boost::system::error_code& ec);

    /// The stream header of the last stream_open event.
    const stream_header& header() const noexcept { return header_; }
    /// The element of the last element event; valid until the next call to
    /// prepare(), feed(), next() or reset(). Copy it with element::copy_of.
    node element() const noexcept { return current_; }
    /// element().ns(), as the reader's checks resolved it (no lookup).
    std::string_view element_ns() const noexcept { return current_ ? root_ns_ : std::string_view{}; }
    /// Takes the element of the last element event out of the reader,
    /// without a copy: the returned element owns the parsed tree, with the
    /// namespaces it inherited from the stream header declared on its root
    /// (as element::copy_of would). element() is empty afterwards; the next
    /// element is parsed into a new tree. Empty when there is no element.
    xml::element take_element();

    std::string_view error_text() const noexcept { return error_text_; }

    /// Stream restart: expect a new header; keeps unconsumed input.
    void reset() noexcept;
    /// Stream restart that also drops unconsumed input.
    void clear() noexcept;

    /// Release memory held for parsing (input buffer, tree pages, scratch)
    /// when no input is pending, so that an idle stream costs next to
    /// nothing. Invalidates element(). Returns true when released.
    bool shrink() noexcept;
    /// Read elements with no stream header (RFC 7395 WebSocket framing), in the
    /// namespace context of `context` (its default_ns and prefixes).
    void set_headerless(const stream_header& context);

    framer& get_framer() noexcept { return framer_; }
    const detail::ns_scope& scope() const noexcept { return scope_; }

private:
    boost::system::error_code parse_header(std::span<char> frame);
    boost::system::error_code parse_element(std::span<char> frame);
    boost::system::error_code validate(pugi::xml_node root);
    boost::system::error_code fail(stream_errc c, const char* text);

    framer framer_;
    std::unique_ptr<pugi::xml_document> doc_; // the last element's tree (take_element hands it over)
    stream_header header_;
    detail::ns_scope scope_;
    node current_;
    // Scratch space of validate(), kept so that steady state allocates nothing.
    std::vector<std::pair<std::string_view, std::string_view>> decls_; // = detail::ns_decls
    std::vector<std::size_t> marks_;
    std::vector<std::string_view> names_;
    bool prefixed_ = false; // the last element's tree has a prefixed name (xmlns:* aside)
    bool root_declares_default_ = false; // its root has an xmlns attribute
    std::string_view root_ns_; // its root's namespace
    boost::system::error_code error_;
    std::string_view error_text_;
};

/// Parses one standalone element, with every check of the reader and limits
/// `l`, in the namespace context `context` (its default_ns and prefixes, as a
/// stream header would declare them). The result declares on its root what
/// it inherited from the context, so it is self-contained.
///
/// On error returns an empty element and sets `ec` to a stream_errc; text that
/// is incomplete, or holds more than one element, is bad-format.
element parse_element(std::string_view text, boost::system::error_code& ec, const stream_header& context = {},
                      const struct limits& l = {});

/// pugixml options used to parse elements: CDATA kept, entities decoded,
/// end-of-line and attribute white space normalized as XML 1.0 requires, and
/// white-space-only text kept (it is content in XMPP).
inline constexpr unsigned parse_options = pugi::parse_cdata | pugi::parse_escapes | pugi::parse_eol |
                                          pugi::parse_wconv_attribute | pugi::parse_ws_pcdata;

} // namespace xmpp::xml
