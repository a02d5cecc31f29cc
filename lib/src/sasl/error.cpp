// SASL errors: RFC 6120 6.5 <failure/> conditions and client-side errors.
#include <xmpp/sasl.hpp>

#include "detail.hpp"

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace xmpp::sasl {

namespace {

struct errc_info {
    std::string_view name;    // RFC 6120 6.5 element name, "" for client-side values
    std::string_view message; // for error_code::message()
};

// Indexed by errc value - 1.
constexpr std::array<errc_info, 24> infos{{
    {"aborted", "the authentication exchange was aborted"},
    {"account-disabled", "the account is disabled"},
    {"credentials-expired", "the credentials have expired"},
    {"encryption-required", "the mechanism requires an encrypted stream"},
    {"incorrect-encoding", "the data was not base64 encoded correctly"},
    {"invalid-authzid", "the authorization identity is invalid or not permitted"},
    {"invalid-mechanism", "the mechanism is not supported"},
    {"malformed-request", "the authentication request was malformed"},
    {"mechanism-too-weak", "the mechanism is weaker than the server allows for this account"},
    {"not-authorized", "the credentials were not accepted"},
    {"temporary-auth-failure", "temporary authentication failure on the server"},
    {"", "no acceptable SASL mechanism is offered"},
    {"", "PLAIN is refused on a stream without TLS"},
    {"", "malformed SASL message from the server"},
    {"", "the SCRAM server nonce does not extend the client nonce"},
    {"", "the server signature is wrong: the server is not authenticated"},
    {"", "the SCRAM server reported an error"},
    {"", "the SCRAM iteration count is outside the accepted range"},
    {"", "channel binding data is not available"},
    {"", "authentication success before the exchange finished"},
    {"", "Cyrus SASL mechanism error"},
    {"", "the username or password is rejected by SASLprep"},
    {"", "invalid SASL configuration"},
    {"", "PLAIN is refused: the TLS peer's certificate was not verified"},
}};

static_assert(static_cast<std::size_t>(errc::plain_unverified_peer) == infos.size());

// Shared by sasl_category() and every text-carrying copy of it: Boost.System
// compares categories by id when it is non-zero.
constexpr unsigned long long sasl_category_id = 0x5a51c4e0b7d2931fULL;

class sasl_category_impl : public boost::system::error_category {
public:
    constexpr sasl_category_impl() noexcept : error_category(sasl_category_id) {}

    const char* name() const noexcept override { return "xmpp.sasl"; }

    std::string message(int ev) const override {
        if (ev == 0) return "no error";
        if (ev < 0 || static_cast<std::size_t>(ev) > infos.size())
            return "unknown SASL error " + std::to_string(ev);
        return std::string(infos[static_cast<std::size_t>(ev) - 1].message);
    }
};

// Equal to sasl_category(), but one value's message is a fixed text (Cyrus's
// sasl_errdetail(), a SCRAM e= value).
class text_category final : public sasl_category_impl {
public:
    text_category(int ev, std::string text) : ev_(ev), text_(std::move(text)) {}

    std::string message(int ev) const override {
        if (ev == ev_) return text_;
        return sasl_category_impl::message(ev);
    }

private:
    int ev_;
    std::string text_;
};

} // namespace

const boost::system::error_category& sasl_category() noexcept {
    static constexpr sasl_category_impl cat;
    return cat;
}

std::string_view condition_name(errc e) noexcept {
    const auto i = static_cast<std::size_t>(e);
    if (i == 0 || i > infos.size()) return {};
    return infos[i - 1].name;
}

errc from_condition(std::string_view element_name) noexcept {
    for (std::size_t i = 0; i < infos.size() && !infos[i].name.empty(); ++i)
        if (infos[i].name == element_name) return static_cast<errc>(i + 1);
    // Not a 6.5 condition: the failure stands; "not authorized" is the
    // least specific reading.
    return errc::not_authorized;
}

namespace detail {

std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    for (char c : s.substr(0, max)) out += (c >= 0x20 && c <= 0x7e) ? c : '?';
    return out;
}

error_code make_error_with_text(errc e, std::string_view text) {
    constexpr std::size_t max_texts = 256;
    // Categories must outlive every error_code that points at them: they are
    // never freed (the map is reachable for the life of the process).
    static std::mutex mutex;
    static auto* texts = new std::map<std::pair<int, std::string>, std::unique_ptr<text_category>,
                                      std::less<>>;
    const int ev = static_cast<int>(e);
    std::string key_text(text.substr(0, 512));
    std::lock_guard lock(mutex);
    auto key = std::make_pair(ev, key_text);
    auto it = texts->find(key);
    if (it == texts->end()) {
        if (texts->size() >= max_texts) return make_error_code(e);
        it = texts->emplace(key, std::make_unique<text_category>(ev, std::move(key_text))).first;
    }
    return {ev, *it->second};
}

} // namespace detail

} // namespace xmpp::sasl
