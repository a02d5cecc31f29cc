// Base64 (RFC 4648 section 4) for SASL payloads: strict decoding (padding
// required, no whitespace, no non-zero pad bits), as RFC 6120 6.4.2 demands.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace xmpp::detail {

std::string base64_encode(std::string_view in);
/// nullopt on any deviation from canonical base64.
std::optional<std::string> base64_decode(std::string_view in);

} // namespace xmpp::detail
