// Include Catch2 v2 (Debian 12) or v3, whichever the build found.
#pragma once
#ifdef XMPP_CATCH2_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
