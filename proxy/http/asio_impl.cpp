// The one translation unit that compiles Asio, Asio SSL and Beast. Every other
// file includes their headers with *_SEPARATE_COMPILATION defined, so a change
// elsewhere never recompiles this (the costliest TU in the project).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
