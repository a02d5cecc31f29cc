// Incremental XML stream framer (sans-io): splits the bytes of an XMPP stream
// into the stream header, complete top-level elements and the stream end.
#pragma once

#include <cstddef>
#include <utility>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <boost/system/error_code.hpp>

#include <xmpp/stream_error.hpp>

namespace xmpp::xml {

/// Limits applied to every stream; exceeding one is a policy-violation stream
/// error (RFC 6120 4.9.3.14). Memory held by a framer is bounded by
/// max_element_bytes plus the size of one read.
struct limits {
    /// Largest top-level element (a stanza with all its markup), and largest
    /// stream header, in bytes. Prosody and ejabberd default to 256 KiB too.
    std::size_t max_element_bytes = 256 * 1024;
    /// Deepest element nesting; the top-level element is at depth 1.
    std::size_t max_depth = 64;
    /// Most attributes on one element, namespace declarations included.
    std::size_t max_attributes = 64;
};

/// What framer::next found.
enum class frame_event : std::uint8_t {
    need_more,    ///< all buffered input consumed; feed more bytes
    stream_open,  ///< the stream header start tag, in frame()
    element,      ///< one complete top-level element, in frame()
    stream_close, ///< the stream's end tag, in frame()
};

/// Splits an XML stream into frames without building a tree.
///
/// It checks what a tree builder would not: RFC 6120 section 11 restrictions
/// (no comments, processing instructions, DTDs or entity references other than
/// the predefined five: restricted-xml), UTF-8 and XML 1.0 character validity,
/// character references, `<` in attribute values (not-well-formed), character
/// data at stream level (bad-format) and the limits. It tracks quotes, CDATA
/// sections and nesting so that `<` and `>` inside values or CDATA never
/// confuse framing. Input may arrive in chunks of any size, down to one byte.
///
/// Usage: write input with prepare()/commit() (or feed()), then call next()
/// until it returns need_more. The frame() of an event is valid until the next
/// call to prepare(), feed() or next(). Bytes are consumed only up to the end
/// of the returned frame, so the caller may reset() after an event and parse
/// what follows as a new stream (a stream restart, RFC 6120 4.3.3).
///
/// No heap allocation happens once the buffer has reached the size of the
/// largest element plus one read. After an error, next() keeps returning it
/// until reset(). Thread safety: distinct objects are independent; one object
/// must not be used concurrently.
class framer {
public:
    explicit framer(limits l = {});

    /// Writable space of at least `n` bytes at the end of the buffered input.
    std::span<char> prepare(std::size_t n);
    /// Make `n` bytes written into the last prepare() area readable.
    void commit(std::size_t n) noexcept;
    /// Copy `data` into the buffer (prepare + memcpy + commit).
    void feed(std::string_view data);

    /// Scan buffered input for the next event. On error returns need_more and
    /// sets `ec` to a stream_errc; error_text() says what was wrong.
    frame_event next(boost::system::error_code& ec);

    /// The bytes of the last stream_open, element or stream_close event. The
    /// span is mutable so that a parser may work in place.
    std::span<char> frame() noexcept { return {buf_.data() + frame_begin_, frame_end_ - frame_begin_}; }

    /// Human-readable detail of the last error ("comment in stream", ...).
    std::string_view error_text() const noexcept { return error_text_; }

    /// Expect a new stream header (stream restart). Keeps input not consumed
    /// yet (see buffered()) and clears any error.
    void reset() noexcept;
    /// Drop all buffered input too (e.g. before a TLS handshake, where any
    /// plaintext left over would be an injection attempt).
    void clear() noexcept;

    /// Release the buffer's memory when no input is pending (an idle stream
    /// then holds none). Invalidates frame(). Returns true when released.
    bool shrink() noexcept;
    /// Frame top-level elements with no stream header and no stream end, as
    /// RFC 7395 WebSocket messages carry them.
    void set_headerless(bool on) noexcept;

    /// Bytes received but not yet consumed by an event.
    std::size_t buffered() const noexcept { return end_ - frame_end_; }
    /// Size of the internal buffer (for memory accounting).
    std::size_t capacity() const noexcept { return buf_.size(); }
    const struct limits& get_limits() const noexcept { return limits_; }
    /// Qualified name of the stream element from the header ("stream:stream").
    std::string_view stream_qname() const noexcept { return {stream_qname_, stream_qname_len_}; }

private:
    enum class lex : std::uint8_t {
        prolog,     // before the stream header
        xml_decl,   // inside <?xml ... ?>
        between,    // at stream level, between top-level elements
        text,       // character data inside an element
        in_tag,     // inside a start tag, outside quotes
        attr_value, // inside a quoted attribute value
        end_tag,    // inside </...>
        cdata,      // inside <![CDATA[ ... ]]>
        closed,     // after the stream end tag
        failed,
    };

    frame_event fail(boost::system::error_code& ec, stream_errc c, const char* text);
    frame_event scan(boost::system::error_code& ec);
    int reference(std::size_t p, std::size_t e, stream_errc& bad) const noexcept;
    void compact();
    // Scanning an element, the stream header or the XML declaration.
    bool in_element() const noexcept {
        return lex_ != lex::prolog && lex_ != lex::between && lex_ != lex::closed && lex_ != lex::failed;
    }

    // The input buffer: grown without a zero fill (the socket overwrites
    // it), released to a small per-thread cache (see framer.cpp).
    class input_buffer {
    public:
        input_buffer() = default;
        input_buffer(input_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), cap_(std::exchange(o.cap_, 0)) {}
        input_buffer& operator=(input_buffer&& o) noexcept {
            if (this != &o) {
                release();
                p_ = std::exchange(o.p_, nullptr);
                cap_ = std::exchange(o.cap_, 0);
            }
            return *this;
        }
        ~input_buffer() { release(); }
        char* data() const noexcept { return p_; }
        std::size_t size() const noexcept { return cap_; }
        // At least `n` bytes, the first `keep` preserved.
        void grow(std::size_t n, std::size_t keep);
        void release() noexcept;

    private:
        char* p_ = nullptr;
        std::size_t cap_ = 0;
    };

    struct limits limits_;
    input_buffer buf_;
    std::size_t end_ = 0;         // end of committed input
    std::size_t pos_ = 0;         // scan position
    std::size_t elem_begin_ = 0;  // start of the element or header being scanned
    std::size_t frame_begin_ = 0; // last event's frame
    std::size_t frame_end_ = 0;   // = start of unconsumed input
    std::size_t depth_ = 0;
    std::size_t attrs_ = 0;
    lex lex_ = lex::prolog;
    char quote_ = 0;
    bool in_header_ = false;
    bool headerless_ = false;
    bool seen_decl_ = false;
    boost::system::error_code error_;
    const char* error_text_ = "";
    char stream_qname_[64] = {};
    std::size_t stream_qname_len_ = 0;
};

} // namespace xmpp::xml
