//! Refusing source code nested too deeply to compile, before the compiler sees it.
//!
//! RustPython's parser and compiler recurse once per level of nesting (brackets, operators,
//! f-strings, blocks) with no limit of their own, so `eval('[' * 50000 + ']' * 50000)`
//! overflowed the engine thread's stack and aborted the whole node. A stack overflow cannot be
//! caught, so the check comes first: a linear pass of the lexer (which does not recurse) bounds
//! the depth of the syntax tree from above, and a source whose bound does not fit in the stack
//! the current thread has left is refused with a `RecursionError`, as CPython refuses it.

use rustpython_vm::compiler::ast::token::TokenKind as T;
use rustpython_vm::compiler::parser::{lexer::lex, Mode};
use rustpython_vm::{PyResult, VirtualMachine};

/// Stack of every thread that runs Python here (the engine thread, scripts, and through the
/// prelude's `_thread.stack_size`, threads Python starts). Only touched pages cost memory.
pub(crate) const THREAD_STACK: usize = 16 * 1024 * 1024;

/// Stack one counted level may take in the parser and compiler together. Measured with a
/// 16 MiB stack (the dev profile, optimised): `(` nesting, the most per counted token,
/// overflows at about 7,900 levels (2.1 KiB each); f-strings at 5,200 (3.2 KiB, two counted
/// tokens each), lambdas at 11,400 (two each), unary minus, attribute and call chains at
/// 15,000 (1.1 KiB). Twice the worst, so the refusal comes well before the overflow.
const BYTES_PER_LEVEL: usize = 4 * 1024;

/// Stack kept free for what runs around the compiler (the frames of the caller, the error).
const RESERVE: usize = 512 * 1024;

/// Assumed stack left where the platform does not say.
const UNKNOWN_STACK: usize = 2 * 1024 * 1024;

/// Raises `RecursionError` when `source` may be nested too deeply to compile on this thread.
pub(crate) fn check(vm: &VirtualMachine, source: &str) -> PyResult<()> {
    let allowed = remaining_stack().saturating_sub(RESERVE) / BYTES_PER_LEVEL;
    // Every counted level takes at least one byte of source: short sources are always fine.
    if source.len() <= allowed {
        return Ok(());
    }
    let depth = depth_bound(source);
    if depth > allowed {
        return Err(vm.new_recursion_error(format!(
            "source nested too deeply to compile: up to {depth} levels, at most {allowed} here"
        )));
    }
    Ok(())
}

/// An upper bound on the depth of `source`'s syntax tree, from its tokens: open brackets
/// (and f-strings), indentation, and within each bracket (or logical line) the operators,
/// keywords and closed brackets since the last comma, which is what left- or right-deep
/// chains (`a+a+...`, `a.b.c`, `f()()`, `x if c else ...`, `not not ...`) are made of.
/// Siblings separated by commas do not nest, so a comma starts the count afresh.
pub(crate) fn depth_bound(source: &str) -> usize {
    let mut lexer = lex(source, Mode::Module);
    // Counted tokens in the current segment of each open bracket; [0] is the logical line.
    let mut levels: Vec<usize> = vec![0];
    let (mut sum, mut indent, mut max) = (0usize, 0usize, 0usize);
    loop {
        match lexer.next_token() {
            T::EndOfFile => break,
            T::Lpar | T::Lsqb | T::Lbrace | T::FStringStart | T::TStringStart => levels.push(0),
            T::Rpar | T::Rsqb | T::Rbrace | T::FStringEnd | T::TStringEnd => {
                if levels.len() > 1 {
                    sum -= levels.pop().unwrap_or(0);
                }
                // The closed bracket may be followed by a trailer: `f()()`, `x[0][0]`.
                bump(&mut levels, &mut sum);
            }
            T::Comma | T::Semi | T::Newline => {
                if let Some(top) = levels.last_mut() {
                    sum -= *top;
                    *top = 0;
                }
            }
            T::Indent => indent += 1,
            T::Dedent => indent = indent.saturating_sub(1),
            t if t.is_operator() || nests(t) => bump(&mut levels, &mut sum),
            _ => {}
        }
        max = max.max(indent + levels.len() + sum);
    }
    max
}

fn bump(levels: &mut [usize], sum: &mut usize) {
    if let Some(top) = levels.last_mut() {
        *top += 1;
        *sum += 1;
    }
}

/// Keywords that start or continue a nested expression (operators are counted anyway).
fn nests(t: T) -> bool {
    matches!(
        t,
        T::If
            | T::Else
            | T::Lambda
            | T::Await
            | T::Yield
            | T::For
            | T::Async
            | T::From
            | T::Exclamation
    )
}

/// Bytes of stack between here and the end of the current thread's stack.
fn remaining_stack() -> usize {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    match stack_low() {
        Some(low) if sp > low => sp - low,
        _ => UNKNOWN_STACK,
    }
}

#[cfg(target_os = "linux")]
fn stack_low() -> Option<usize> {
    thread_local! {
        static LOW: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
    }
    if let Some(low) = LOW.with(|l| l.get()) {
        return Some(low);
    }
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read and destroyed
    // once; pthread_attr_getstack only writes the two out-parameters.
    let low = unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if got != 0 {
            return None;
        }
        addr as usize
    };
    LOW.with(|l| l.set(Some(low)));
    Some(low)
}

#[cfg(not(target_os = "linux"))]
fn stack_low() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::depth_bound;

    #[test]
    fn the_bound_follows_nesting_not_length() {
        assert!(depth_bound(&("[".repeat(5000) + &"]".repeat(5000))) >= 5000);
        assert!(depth_bound(&("(".repeat(300) + "1" + &")".repeat(300))) >= 300);
        assert!(depth_bound(&("-".repeat(3000) + "1")) >= 3000);
        assert!(depth_bound(&format!("a{}", ".b".repeat(3000))) >= 3000);
        assert!(depth_bound(&format!("f{}", "()".repeat(3000))) >= 3000);
        assert!(depth_bound(&("f\"{".repeat(100) + "1" + &"}\"".repeat(100))) >= 100);
        // Long but flat: a big list, many statements, a long string.
        let items: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
        assert!(depth_bound(&format!("x = [{}]", items.join(", "))) < 10);
        assert!(depth_bound(&"x = 1 + 2\n".repeat(20_000)) < 10);
        assert!(depth_bound(&format!("s = '{}'", "(".repeat(50_000))) < 10);
        assert!(depth_bound("def f():\n    if x:\n        return [a + b, c]\n") < 12);
    }
}
