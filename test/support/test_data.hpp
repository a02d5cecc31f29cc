// Files under test/data/.
#pragma once

#include "test_catch.hpp"

#include <fstream>
#include <sstream>
#include <string>

namespace xmpp::test {

/// Contents of test/data/<relative>; fails the test when missing.
inline std::string read_data(const std::string& relative) {
    std::ifstream in(std::string(XMPP_TEST_DATA) + "/" + relative, std::ios::binary);
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace xmpp::test
