// The one place that pulls cpprestsdk into a translation unit (client.cc).
// Private to src/http: cpprest defines a macro `U` and platform string types
// that must not leak into the rest of nixmox.
#pragma once

// Keeps cpprest from defining the `U` macro and `utility::string_t` helpers
// that collide with fmt and gtest.
#ifndef _TURN_OFF_PLATFORM_STRING
#define _TURN_OFF_PLATFORM_STRING
#endif

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>
#include <cpprest/producerconsumerstream.h>
#include <cpprest/uri.h>
#include <pplx/pplxtasks.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
