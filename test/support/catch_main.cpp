// Catch2 v2's main, compiled once for every unit-test executable.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
