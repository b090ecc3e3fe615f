// GCC 13's <iostream> makes every including object call std::ios_base_library_init() (GLIBCXX_3.4.32).
// Older libstdc++ initialises the standard streams itself, so a no-op is the correct stand-in.
namespace std { void ios_base_library_init() {} }
