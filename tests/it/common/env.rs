//! The environment variables the secret tests resolve through `env:` references. Every suite
//! shares this process and its tests run on parallel threads; setting a variable while another
//! thread reads the environment is undefined behaviour, so they are set once, before `main`,
//! while no other thread exists.

/// (name, value) of every variable a test resolves through the `env:` provider.
const SECRET_VARS: &[(&str, &str)] = &[
    ("ACCESS_IT_PASSWORD", "matrix-secret-value"),
    ("GRPC_IT_PASSWORD", "grpc-secret-value"),
    ("IT_DB_PASSWORD", "hunter2-very-secret"),
];

extern "C" fn set_secret_vars() {
    for (name, value) in SECRET_VARS {
        // SAFETY: runs before main (from the initializer below), when this is the only thread.
        unsafe { std::env::set_var(name, value) };
    }
}

// The loader calls the functions in this section before `main`.
#[used]
#[cfg_attr(
    any(target_os = "linux", target_os = "android", target_os = "freebsd"),
    unsafe(link_section = ".init_array")
)]
#[cfg_attr(
    target_vendor = "apple",
    unsafe(link_section = "__DATA,__mod_init_func")
)]
static SET_SECRET_VARS: extern "C" fn() = set_secret_vars;
