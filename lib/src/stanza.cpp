// Stanzas, RFC 6120 8 (types from RFC 6121 where it defines them).
#include <xmpp/stanza.hpp>

#include <array>
#include <stdexcept>
#include <cerrno>
#include <system_error>

#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <unistd.h>

namespace xmpp {

namespace {

constexpr std::array<std::string_view, 5> message_types{
    "normal", "chat", "groupchat", "headline", "error"};
constexpr std::array<std::string_view, 8> presence_types{
    "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"};
constexpr std::array<std::string_view, 4> iq_types{"get", "set", "result", "error"};

template <class E, std::size_t N>
std::string_view name_of(const std::array<std::string_view, N>& names, E e) noexcept {
    auto i = static_cast<std::size_t>(e);
    return i < N ? names[i] : std::string_view{};
}

template <class E, std::size_t N>
std::optional<E> value_of(const std::array<std::string_view, N>& names, std::string_view s) noexcept {
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == s) return static_cast<E>(i);
    return std::nullopt;
}

} // namespace

bool is_content_ns(std::string_view n) noexcept {
    return n == xml::ns::client || n == xml::ns::server || n == xml::ns::component;
}

stanza_kind classify(xml::node n) noexcept {
    if (!n) return stanza_kind::other;
    // Compare the name first: it is a plain string compare, while resolving the
    // namespace walks the attributes of the element and its ancestors.
    auto name = n.name();
    stanza_kind k;
    if (name == "message") k = stanza_kind::message;
    else if (name == "presence") k = stanza_kind::presence;
    else if (name == "iq") k = stanza_kind::iq;
    else return stanza_kind::other;
    return is_content_ns(n.ns()) ? k : stanza_kind::other;
}

std::string_view to_string(message_type t) noexcept { return name_of(message_types, t); }
std::string_view to_string(presence_type t) noexcept { return name_of(presence_types, t); }
std::string_view to_string(iq_type t) noexcept { return name_of(iq_types, t); }

std::optional<message_type> message_type_from_string(std::string_view s) noexcept {
    return value_of<message_type>(message_types, s);
}
std::optional<presence_type> presence_type_from_string(std::string_view s) noexcept {
    return value_of<presence_type>(presence_types, s);
}
std::optional<iq_type> iq_type_from_string(std::string_view s) noexcept {
    return value_of<iq_type>(iq_types, s);
}

// --- views -------------------------------------------------------------------

message_type message_view::type() const noexcept {
    // RFC 6121 5.2.2: no type, or one we do not understand, means normal.
    return message_type_from_string(type_attr()).value_or(message_type::normal);
}

std::optional<std::string> message_view::body() const {
    auto b = node_.child("body"); // in the stanza's own namespace
    if (!b) return std::nullopt;
    return b.text();
}

std::optional<presence_type> presence_view::type() const noexcept {
    return presence_type_from_string(type_attr());
}

std::optional<iq_type> iq_view::type() const noexcept { return iq_type_from_string(type_attr()); }

bool iq_view::is_request() const noexcept {
    auto t = type();
    return t == iq_type::get || t == iq_type::set;
}

xml::node iq_view::payload() const noexcept {
    auto ns_name = node_.ns();
    for (xml::node c : xml::children(node_))
        if (!c.is("error", ns_name)) return c;
    return {};
}

// --- builders ----------------------------------------------------------------

xml::element make_message(std::string_view to, std::string_view body, message_type type,
                          std::string_view content_ns) {
    xml::element e("message", content_ns);
    auto r = e.root();
    if (type != message_type::normal) r.set_attr("type", to_string(type));
    r.set_attr("id", new_id());
    if (!to.empty()) r.set_attr("to", to);
    if (!body.empty()) r.append("body").set_text(body);
    return e;
}

xml::element make_presence(presence_type type, std::string_view to, std::string_view content_ns) {
    xml::element e("presence", content_ns);
    auto r = e.root();
    if (type != presence_type::available) r.set_attr("type", to_string(type));
    r.set_attr("id", new_id());
    if (!to.empty()) r.set_attr("to", to);
    return e;
}

xml::element make_iq(iq_type type, std::string_view to, std::string_view payload_qname,
                     std::string_view payload_ns, std::string_view content_ns) {
    xml::element e("iq", content_ns);
    auto r = e.root();
    // A fresh element: no attribute to replace (set_attr() looks for one;
    // every IQ sent pays for this). Our own values need no NUL check; the
    // caller's 'to' does (pugixml would cut it short).
    const auto t = to_string(type);
    r.native().append_attribute("type").set_value(t.data(), t.size());
    const auto id = new_id(); // 8.2.3: required on every IQ
    r.native().append_attribute("id").set_value(id.data(), id.size());
    if (!to.empty()) {
        if (to.find('\0') != std::string_view::npos)
            throw std::invalid_argument("xmpp::xml: NUL character in XML text or attribute value");
        r.native().append_attribute("to").set_value(to.data(), to.size());
    }
    if (!payload_qname.empty()) r.append(payload_qname, payload_ns);
    return e;
}

xml::element make_iq_result(const iq_view& request) {
    // 8.2.3: only get and set are answered; a result or error never is.
    if (request.kind() != stanza_kind::iq || !request.is_request()) return {};
    auto src = request.node();
    xml::element e("iq", src.ns());
    auto r = e.root();
    r.set_attr("type", "result");
    if (auto id = src.find_attr("id")) r.set_attr("id", *id);
    // The addresses swap; one absent stays absent (the server or the
    // client's own account was meant, 8.1.1.1 and 8.1.2.1).
    if (auto from = src.find_attr("from")) r.set_attr("to", *from);
    if (auto to = src.find_attr("to")) r.set_attr("from", *to);
    return e;
}

// --- ids -----------------------------------------------------------------------

namespace {

constexpr char id_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// 12 random bytes make 16 characters of 6 bits; the last one is dropped
// (90 bits are kept).
constexpr std::size_t id_bytes = 12;
static_assert(id_bytes * 8 / 6 == id_length + 1);
// One getrandom(2) call per 256 ids.
constexpr std::size_t pool_size = id_bytes * 256;

struct random_pool {
    std::array<unsigned char, pool_size> bytes;
    std::size_t pos = pool_size; // empty: fill on first use
};
// Trivially constructible, so no TLS initialization guard on each access.
thread_local random_pool pool;

// The child of a fork() would otherwise hand out the same ids as its parent.
void discard_pool_in_child() noexcept { pool.pos = pool_size; }

void read_urandom(unsigned char* p, std::size_t n) {
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open /dev/urandom");
    while (n > 0) {
        auto r = ::read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "read /dev/urandom");
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    ::close(fd);
}

void fill_random(unsigned char* p, std::size_t n) {
    while (n > 0) {
        auto r = ::getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            // ENOSYS/EPERM: an old kernel or a seccomp filter without getrandom.
            read_urandom(p, n);
            return;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
}

} // namespace

std::string new_id() {
    static const int at_fork_registered = ::pthread_atfork(nullptr, nullptr, discard_pool_in_child);
    (void)at_fork_registered;

    auto& pl = pool;
    if (pl.pos + id_bytes > pool_size) {
        fill_random(pl.bytes.data(), pool_size);
        pl.pos = 0;
    }
    const unsigned char* b = pl.bytes.data() + pl.pos;
    pl.pos += id_bytes;

    char out[id_length + 1];
    // 3 bytes -> 4 characters of 6 bits (base64url without padding).
    for (std::size_t i = 0, o = 0; i < id_bytes; i += 3, o += 4) {
        unsigned v = (unsigned(b[i]) << 16) | (unsigned(b[i + 1]) << 8) | unsigned(b[i + 2]);
        out[o] = id_alphabet[(v >> 18) & 63];
        out[o + 1] = id_alphabet[(v >> 12) & 63];
        out[o + 2] = id_alphabet[(v >> 6) & 63];
        out[o + 3] = id_alphabet[v & 63];
    }
    return std::string(out, id_length);
}

} // namespace xmpp
