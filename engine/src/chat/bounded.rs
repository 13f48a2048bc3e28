//! The memory a chat template may use.
//!
//! A template comes with the model file, which may be anyone's. minijinja bounds the steps a
//! template takes (fuel) and one string repetition (100 MB), not the size of what it builds:
//! `{% set s = s ~ s %}` in a loop of 24 steps builds 134 MB from a 60-byte template. So a
//! template is compiled here with the operators that build values (`~`, `+`, `*`, slices)
//! turned into calls of measured functions; every filter and string method is wrapped; every
//! emitted value is counted; an assignment to a namespace stores a detached copy (no reference
//! cycle outlives a render). No value may exceed [`MAX_VALUE_BYTES`] and everything built in
//! one render may not exceed [`MAX_BUILT_BYTES`]. The template's own text, repeated by loops,
//! is bounded through fuel (steps × its longest piece of text ≤ [`MAX_RAW_BYTES`]), and
//! constants folded at compile time are measured before they are folded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{self, CodeGenerator, Instruction, Instructions, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State};

/// The largest value (string, list, map: its bytes, 8 more per item) a template may build.
/// A prompt that fills the largest context edgeslm runs is well under it.
pub const MAX_VALUE_BYTES: usize = 2 << 20;
/// Everything one render may build and emit, all values together.
pub const MAX_BUILT_BYTES: usize = 32 << 20;
/// The template's own text a render may emit: steps (fuel) × its longest piece of text.
pub const MAX_RAW_BYTES: usize = 16 << 20;
/// The most steps a render may take (minijinja's fuel); real templates take a few hundred
/// for one turn.
pub const MAX_STEPS: u64 = 100_000;
/// The largest count a template may pass to `batch`, `slice` or an indent width.
const MAX_COUNT: usize = 100_000;

/// Names the rewritten operators are called by; a template may not use them itself.
const RESERVED: &str = "__edgeslm_";
const CONCAT: &str = "__edgeslm_concat";
const ADD: &str = "__edgeslm_add";
const MUL: &str = "__edgeslm_mul";
const SLICE: &str = "__edgeslm_slice";
const DETACH: &str = "__edgeslm_detach";

/// A template compiled with its value-building operators measured.
pub struct Template<'source> {
    instructions: Instructions<'source>,
    blocks: BTreeMap<&'source str, Instructions<'source>>,
    steps: u64,
}

impl<'source> Template<'source> {
    /// Parses `source` as Hugging Face renders chat templates (`trim_blocks`, `lstrip_blocks`).
    pub fn compile(source: &'source str) -> Result<Self, Error> {
        if source.contains(RESERVED) {
            return Err(invalid(format!("the template uses a name that starts with {RESERVED}, which edgeslm reserves")));
        }
        let ws = WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true };
        let ast = machinery::parse(source, "chat", SyntaxConfig::default(), ws)?;
        check_constants(&ast)?;
        let mut generator = CodeGenerator::new("chat", source);
        generator.compile_stmt(&ast);
        let (code, blocks) = generator.finish();
        let (instructions, mut longest_text) = measure_operators(&code);
        let blocks = blocks
            .into_iter()
            .map(|(name, code)| {
                let (code, longest) = measure_operators(&code);
                longest_text = longest_text.max(longest);
                (name, code)
            })
            .collect();
        let steps = MAX_STEPS.min((MAX_RAW_BYTES / longest_text) as u64);
        Ok(Self { instructions, blocks, steps })
    }

    /// An environment for this template: the measured operators, filters and methods on top of
    /// minijinja's builtins and Python's string methods; the caller adds its own functions.
    pub fn environment(&self) -> (Environment<'source>, Arc<Budget>) {
        let budget = Arc::new(Budget::default());
        let mut env = Environment::new();
        env.set_fuel(Some(self.steps));
        measure_environment(&mut env, &budget);
        (env, budget)
    }

    /// Renders with `root` as the context, in `env` from [`Template::environment`].
    pub fn render(&self, env: &Environment<'source>, budget: &Budget, root: Value) -> Result<String, Error> {
        budget.charge(&root)?;
        let mut text = String::new();
        let mut out = machinery::make_string_output(&mut text);
        machinery::Vm::new(env).eval(&self.instructions, root, &self.blocks, &mut out, AutoEscape::None)?;
        Ok(text)
    }
}

/// What one render has built so far.
#[derive(Default)]
pub struct Budget {
    built: AtomicUsize,
}

impl Budget {
    /// Refuses, before it is built, a value estimated at `bytes`.
    fn check(&self, bytes: usize, what: &str) -> Result<(), Error> {
        if bytes > MAX_VALUE_BYTES {
            return Err(invalid(format!("{what} would build a value of more than {MAX_VALUE_BYTES} bytes")));
        }
        if self.built.load(Ordering::Relaxed).saturating_add(bytes) > MAX_BUILT_BYTES {
            return Err(invalid(format!("the template built more than {MAX_BUILT_BYTES} bytes")));
        }
        Ok(())
    }

    /// Counts `bytes` just built (or about to be emitted).
    fn add(&self, bytes: usize, what: &str) -> Result<(), Error> {
        self.check(bytes, what)?;
        self.built.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn charge(&self, value: &Value) -> Result<(), Error> {
        self.add(size(value), "the template")
    }

    fn built(&self, value: Value, what: &str) -> Result<Value, Error> {
        let value = flatten(value, what)?;
        self.add(size(&value), what)?;
        Ok(value)
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// A sequence as a plain list of its items. minijinja builds `l + l`, `l * n` and `chain`
/// lazily: a tree of 2^32 empty parts has no items to count, yet walking it never ends. Every
/// sequence an operator, filter or method gives back is made flat here (walking it costs its
/// items, its inputs being flat too), and refused past the bound on its items.
fn flatten(value: Value, what: &str) -> Result<Value, Error> {
    if !matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable) {
        return Ok(value);
    }
    let Ok(items) = value.try_iter() else { return Ok(value) };
    let mut flat = Vec::new();
    for item in items {
        if flat.len() >= MAX_VALUE_BYTES / 8 {
            return Err(invalid(format!("{what} would build a sequence of more than {} items", MAX_VALUE_BYTES / 8)));
        }
        flat.push(item);
    }
    Ok(Value::from(flat))
}

/// A value's bytes: a string's length, a sequence's or map's items plus 8 each, 8 for
/// anything else. Stops counting past the bound, so a lazy sequence of 2^40 items (built by
/// `l = l + l`) is measured in bounded time.
fn size(value: &Value) -> usize {
    fn walk(value: &Value, depth: usize, total: &mut usize) {
        if *total > MAX_VALUE_BYTES {
            return;
        }
        match value.kind() {
            ValueKind::String => *total += value.as_str().map_or(8, str::len),
            ValueKind::Bytes => *total += value.as_bytes().map_or(8, <[u8]>::len),
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map if depth < 64 => {
                let is_map = value.kind() == ValueKind::Map;
                let Ok(items) = value.try_iter() else { return *total += 8 };
                for item in items {
                    *total += 8;
                    if is_map {
                        walk(&value.get_item(&item).unwrap_or_default(), depth + 1, total);
                    }
                    walk(&item, depth + 1, total);
                    if *total > MAX_VALUE_BYTES {
                        return;
                    }
                }
            }
            _ => *total += 8,
        }
    }
    let mut total = 0;
    walk(value, 0, &mut total);
    total
}

/// The bytes a value takes once written as text: a string as itself, anything else at most six
/// bytes per byte (the escapes of a sequence's `Debug` form).
fn text_size(value: &Value) -> usize {
    match value.as_str() {
        Some(s) => s.len(),
        None => size(value).saturating_mul(6).saturating_add(16),
    }
}

/// The template's code with the operators that build values turned into calls of the
/// measured functions (one instruction for one), and each assignment to a namespace
/// (`{% set ns.x = value %}`) given a detached copy of its value: a namespace is the only thing
/// a template can change, so a value holding the namespace it is stored in (`ns.x = [ns]`)
/// would be a reference cycle that outlives the render. Returns the length of the longest text.
fn measure_operators<'s>(code: &Instructions<'s>) -> (Instructions<'s>, usize) {
    let n = code.len() as u32;
    // Where each instruction starts in the new code: three are put before each assignment.
    let mut start = Vec::with_capacity(n as usize + 1);
    let mut at = 0;
    for i in 0..n {
        start.push(at);
        at += if matches!(code.get(i), Some(Instruction::SetAttr(_))) { 4 } else { 1 };
    }
    start.push(at);
    let to = |target: &u32| start[*target as usize];
    let mut out = Instructions::new(code.name(), code.source());
    let mut longest_text = 1;
    for i in 0..n {
        let line = code.get_line(i).unwrap_or(1) as u16;
        let instruction = match code.get(i).cloned().expect("within the code") {
            Instruction::StringConcat => Instruction::CallFunction(CONCAT, Some(2)),
            Instruction::Add => Instruction::CallFunction(ADD, Some(2)),
            Instruction::Mul => Instruction::CallFunction(MUL, Some(2)),
            Instruction::Slice => Instruction::CallFunction(SLICE, Some(4)),
            Instruction::Jump(t) => Instruction::Jump(to(&t)),
            Instruction::JumpIfFalse(t) => Instruction::JumpIfFalse(to(&t)),
            Instruction::JumpIfFalseOrPop(t) => Instruction::JumpIfFalseOrPop(to(&t)),
            Instruction::JumpIfTrueOrPop(t) => Instruction::JumpIfTrueOrPop(to(&t)),
            Instruction::Iterate(t) => Instruction::Iterate(to(&t)),
            Instruction::BuildMacro(name, t, flags) => Instruction::BuildMacro(name, to(&t), flags),
            Instruction::EmitRaw(text) => {
                longest_text = longest_text.max(text.len());
                Instruction::EmitRaw(text)
            }
            Instruction::SetAttr(name) => {
                // The stack is [value, namespace]: detach the value under it.
                out.add_with_line(Instruction::Swap, line);
                out.add_with_line(Instruction::CallFunction(DETACH, Some(1)), line);
                out.add_with_line(Instruction::Swap, line);
                Instruction::SetAttr(name)
            }
            other => other,
        };
        out.add_with_line(instruction, line);
    }
    (out, longest_text)
}

/// A copy of `value` that shares no mutable object with it: sequences and maps rebuilt (a
/// namespace as a map of what it holds now), strings and numbers shared as they are. Returns
/// the items visited, which the budget counts.
fn detach(value: &Value, depth: usize, visited: &mut usize) -> Value {
    let items = |value: &Value| value.try_iter().into_iter().flatten();
    match value.kind() {
        _ if depth >= 64 => Value::from(()),
        ValueKind::Seq | ValueKind::Iterable => Value::from(
            items(value)
                .map(|item| {
                    *visited += 1;
                    detach(&item, depth + 1, visited)
                })
                .collect::<Vec<_>>(),
        ),
        ValueKind::Map => Value::from_iter(items(value).map(|key| {
            *visited += 1;
            let item = value.get_item(&key).unwrap_or_default();
            (key, detach(&item, depth + 1, visited))
        })),
        _ => value.clone(),
    }
}

/// minijinja's own operators, evaluated where the measured functions let them run.
static OPERATORS: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);

fn operator(expression: &str, a: &Value, b: &Value, c: &Value, d: &Value) -> Result<Value, Error> {
    OPERATORS.compile_expression(expression)?.eval(minijinja::context! { a, b, c, d })
}

fn measure_environment(env: &mut Environment<'_>, budget: &Arc<Budget>) {
    let b = budget.clone();
    env.add_function(CONCAT, move |a: Value, c: Value| {
        b.check(text_size(&a).saturating_add(text_size(&c)), "`~`")?;
        b.built(Value::from(format!("{a}{c}")), "`~`")
    });
    let b = budget.clone();
    env.add_function(ADD, move |a: Value, c: Value| {
        if !(a.is_number() && c.is_number()) {
            b.check(size(&a).saturating_add(size(&c)), "`+`")?;
        }
        b.built(operator("a + b", &a, &c, &Value::UNDEFINED, &Value::UNDEFINED)?, "`+`")
    });
    let b = budget.clone();
    env.add_function(MUL, move |a: Value, c: Value| {
        let (item, count) = if a.is_number() { (&c, &a) } else { (&a, &c) };
        if !item.is_number() {
            // A sequence's repeat costs a step even when it adds nothing (`[] * 77777777`).
            let count = count.as_usize().unwrap_or(usize::MAX);
            let each = if item.kind() == ValueKind::String { size(item) } else { size(item).max(8) };
            b.check(each.saturating_mul(count), "`*`")?;
        }
        b.built(operator("a * b", &a, &c, &Value::UNDEFINED, &Value::UNDEFINED)?, "`*`")
    });
    let b = budget.clone();
    env.add_function(DETACH, move |value: Value| {
        let mut visited = 0;
        let copy = detach(&value, 0, &mut visited);
        b.add(visited.saturating_mul(8), "an assignment")?;
        Ok::<_, Error>(copy)
    });
    let b = budget.clone();
    env.add_function(SLICE, move |a: Value, start: Value, stop: Value, step: Value| {
        b.built(operator("a[b:c:d]", &a, &start, &stop, &step)?, "a slice")
    });

    macro_rules! measured_filters {
        ($($name:literal => $filter:path),* $(,)?) => {$({
            let b = budget.clone();
            let filter = Value::from_function($filter);
            env.add_filter($name, move |state: &State, args: Rest<Value>| {
                b.check(filter_estimate($name, &args)?, concat!("the filter `", $name, "`"))?;
                b.built(filter.call(state, &args)?, concat!("the filter `", $name, "`"))
            });
        })*};
    }
    use minijinja::filters as f;
    measured_filters! {
        "safe" => f::safe, "escape" => f::escape, "e" => f::escape, "lower" => f::lower,
        "upper" => f::upper, "title" => f::title, "capitalize" => f::capitalize,
        "replace" => f::replace, "length" => f::length, "count" => f::length,
        "dictsort" => f::dictsort, "items" => f::items, "reverse" => f::reverse, "trim" => f::trim,
        "join" => f::join, "split" => f::split, "lines" => f::lines, "default" => f::default,
        "d" => f::default, "round" => f::round, "abs" => f::abs, "int" => f::int,
        "float" => f::float, "attr" => f::attr, "first" => f::first, "last" => f::last,
        "min" => f::min, "max" => f::max, "sort" => f::sort, "list" => f::list,
        "string" => f::string, "bool" => f::bool, "batch" => f::batch, "slice" => f::slice,
        "sum" => f::sum, "indent" => f::indent, "select" => f::select, "reject" => f::reject,
        "selectattr" => f::selectattr, "rejectattr" => f::rejectattr, "map" => f::map,
        "groupby" => f::groupby, "unique" => f::unique, "chain" => f::chain, "zip" => f::zip,
        "pprint" => f::pprint, "format" => f::format, "tojson" => f::tojson,
    }

    let b = budget.clone();
    env.set_unknown_method_callback(move |state, value, method, args| {
        let what = format!("the method `{method}`");
        b.check(method_estimate(value, method, args)?, &what)?;
        b.built(minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)?, &what)
    });
    let b = budget.clone();
    env.set_formatter(move |out, state, value| {
        b.add(text_size(value), "an emitted value")?;
        minijinja::escape_formatter(out, state, value)
    });
}

/// An upper bound on what a filter builds, refusing first any argument past the bound (a lazy
/// sequence a filter would materialize).
fn filter_estimate(name: &str, args: &[Value]) -> Result<usize, Error> {
    let sizes: Vec<usize> = args.iter().map(size).collect();
    if sizes.iter().any(|&s| s > MAX_VALUE_BYTES) {
        return Err(invalid(format!("the filter `{name}` was given a value of more than {MAX_VALUE_BYTES} bytes")));
    }
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let text = |i: usize| arg(i).as_str().map(str::to_owned).unwrap_or_default();
    Ok(match name {
        "replace" => replaced_size(&text(0), &text(1), &text(2)),
        "indent" => {
            let width = arg(1).as_usize().unwrap_or_else(|| text(1).len());
            let lines = text(0).matches('\n').count() + 1;
            sizes[0].saturating_add(lines.saturating_mul(count(width)?))
        }
        "format" => formatted_size(&text(0), &sizes[1..], '%'),
        "join" => joined_size(&arg(0), text(1).len()),
        "sum" => sizes.iter().sum(),
        "batch" | "slice" => count(arg(1).as_usize().unwrap_or(usize::MAX))?.saturating_mul(8).saturating_add(sizes[0]),
        "tojson" => {
            let indent = args.iter().skip(1).filter_map(|a| a.as_usize().or_else(|| a.get_attr("indent").ok()?.as_usize())).max();
            sizes[0].saturating_mul(6 + 8 * count(indent.unwrap_or(0))?)
        }
        "pprint" => sizes[0].saturating_mul(16),
        _ => 0,
    })
}

/// An upper bound on what one of Python's string methods builds.
fn method_estimate(value: &Value, method: &str, args: &[Value]) -> Result<usize, Error> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let own = text(Some(value));
    Ok(match method {
        "replace" => replaced_size(&own, &text(args.first()), &text(args.get(1))),
        "format" => formatted_size(&own, &args.iter().map(size).collect::<Vec<_>>(), '{'),
        "join" => joined_size(args.first().unwrap_or(&Value::UNDEFINED), own.len()),
        _ => 0,
    })
}

fn count(n: usize) -> Result<usize, Error> {
    if n > MAX_COUNT {
        return Err(invalid(format!("a count or width of {n} (at most {MAX_COUNT})")));
    }
    Ok(n)
}

fn replaced_size(text: &str, old: &str, new: &str) -> usize {
    let hits = if old.is_empty() { text.chars().count() + 1 } else { text.matches(old).count() };
    text.len().saturating_add(hits.saturating_mul(new.len()))
}

/// A format string's length, plus every width written in it, plus the largest argument for
/// each place an argument may go.
fn formatted_size(format: &str, args: &[usize], marker: char) -> usize {
    let widths: usize = format
        .split(|c: char| !c.is_ascii_digit())
        .map(|digits| digits.parse::<usize>().unwrap_or(if digits.is_empty() { 0 } else { usize::MAX }))
        .fold(0, usize::saturating_add);
    let places = format.matches(marker).count();
    let largest = args.iter().map(|s| s.saturating_mul(6)).max().unwrap_or(0);
    format.len().saturating_add(widths).saturating_add(places.saturating_mul(largest))
}

fn joined_size(items: &Value, separator: usize) -> usize {
    let Ok(items) = items.try_iter() else { return 0 };
    let mut total = 0usize;
    for item in items {
        total = total.saturating_add(text_size(&item)).saturating_add(separator);
        if total > MAX_VALUE_BYTES {
            break;
        }
    }
    total
}

/// Refuses a template whose constants, folded when it is compiled, would be too large
/// (`"a" * 99999999` is built by the compiler, before any render).
fn check_constants(template: &Stmt<'_>) -> Result<(), Error> {
    let mut total = 0usize;
    let mut result = Ok(());
    visit_exprs(template, &mut |expr| {
        if let Some(Folded::Text(bytes) | Folded::Items(bytes)) = fold(expr) {
            total = total.saturating_add(bytes);
            if (bytes > MAX_VALUE_BYTES || total > MAX_BUILT_BYTES) && result.is_ok() {
                result = Err(invalid(format!("the template has a constant of more than {MAX_VALUE_BYTES} bytes")));
            }
        }
    });
    result
}

/// What folding a constant expression gives, without building it: a number, or the bytes of
/// a string or of a sequence's items.
enum Folded {
    Number(Value),
    Text(usize),
    Items(usize),
}

fn fold(expr: &Expr<'_>) -> Option<Folded> {
    let of = |v: &Value| match v.kind() {
        ValueKind::Number => Folded::Number(v.clone()),
        ValueKind::String => Folded::Text(size(v)),
        _ => Folded::Items(size(v)),
    };
    match expr {
        Expr::Const(c) => Some(of(&c.value)),
        Expr::List(list) => folded_items(list.items.iter()),
        Expr::Map(map) => folded_items(map.keys.iter().chain(&map.values)),
        Expr::UnaryOp(op) => match fold(&op.expr)? {
            Folded::Number(_) => expr.as_const().map(|v| of(&v)),
            _ => Some(Folded::Number(Value::from(false))),
        },
        Expr::BinOp(op) => match (op.op, fold(&op.left)?, fold(&op.right)?) {
            (_, Folded::Number(_), Folded::Number(_)) => expr.as_const().map(|v| of(&v)),
            (BinOpKind::Mul, Folded::Text(b), Folded::Number(n)) | (BinOpKind::Mul, Folded::Number(n), Folded::Text(b)) => {
                Some(Folded::Text(b.saturating_mul(n.as_usize().unwrap_or(0))))
            }
            // A sequence's repeat costs a step even when it adds nothing (`() * 77777777`).
            (BinOpKind::Mul, Folded::Items(b), Folded::Number(n)) | (BinOpKind::Mul, Folded::Number(n), Folded::Items(b)) => {
                Some(Folded::Items(b.max(8).saturating_mul(n.as_usize().unwrap_or(0))))
            }
            (_, l, r) => Some(Folded::Text(folded_size(&l).saturating_add(folded_size(&r)))),
        },
        _ => None,
    }
}

fn folded_items<'a, 'e: 'a>(mut exprs: impl Iterator<Item = &'a Expr<'e>>) -> Option<Folded> {
    exprs.try_fold(0usize, |n, item| Some(n.saturating_add(folded_size(&fold(item)?)))).map(Folded::Items)
}

fn folded_size(folded: &Folded) -> usize {
    match folded {
        Folded::Number(_) => 8,
        Folded::Text(b) | Folded::Items(b) => *b,
    }
}

/// Calls `f` on every expression of a template, outermost first.
fn visit_exprs<'a>(stmt: &Stmt<'a>, f: &mut dyn FnMut(&Expr<'a>)) {
    let body = |stmts: &[Stmt<'a>], f: &mut dyn FnMut(&Expr<'a>)| stmts.iter().for_each(|s| visit_exprs(s, f));
    match stmt {
        Stmt::Template(t) => body(&t.children, f),
        Stmt::EmitExpr(e) => visit_expr(&e.expr, f),
        Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
        Stmt::ForLoop(l) => {
            [&l.target, &l.iter].into_iter().chain(&l.filter_expr).for_each(|e| visit_expr(e, f));
            body(&l.body, f);
            body(&l.else_body, f);
        }
        Stmt::IfCond(c) => {
            visit_expr(&c.expr, f);
            body(&c.true_body, f);
            body(&c.false_body, f);
        }
        Stmt::WithBlock(w) => {
            w.assignments.iter().for_each(|(a, b)| [a, b].into_iter().for_each(|e| visit_expr(e, f)));
            body(&w.body, f);
        }
        Stmt::Set(s) => [&s.target, &s.expr].into_iter().for_each(|e| visit_expr(e, f)),
        Stmt::SetBlock(s) => {
            std::iter::once(&s.target).chain(&s.filter).for_each(|e| visit_expr(e, f));
            body(&s.body, f);
        }
        Stmt::AutoEscape(a) => {
            visit_expr(&a.enabled, f);
            body(&a.body, f);
        }
        Stmt::FilterBlock(b) => {
            visit_expr(&b.filter, f);
            body(&b.body, f);
        }
        Stmt::Block(b) => body(&b.body, f),
        Stmt::Import(i) => [&i.expr, &i.name].into_iter().for_each(|e| visit_expr(e, f)),
        Stmt::FromImport(i) => {
            visit_expr(&i.expr, f);
            i.names.iter().for_each(|(a, b)| std::iter::once(a).chain(b).for_each(|e| visit_expr(e, f)));
        }
        Stmt::Extends(e) => visit_expr(&e.name, f),
        Stmt::Include(i) => visit_expr(&i.name, f),
        Stmt::Macro(m) => {
            m.args.iter().chain(&m.defaults).for_each(|e| visit_expr(e, f));
            body(&m.body, f);
        }
        Stmt::CallBlock(c) => {
            visit_call(&c.call, f);
            c.macro_decl.args.iter().chain(&c.macro_decl.defaults).for_each(|e| visit_expr(e, f));
            body(&c.macro_decl.body, f);
        }
        Stmt::Do(d) => visit_call(&d.call, f),
    }
}

fn visit_call<'a>(call: &ast::Call<'a>, f: &mut dyn FnMut(&Expr<'a>)) {
    visit_expr(&call.expr, f);
    visit_args(&call.args, f);
}

fn visit_args<'a>(args: &[CallArg<'a>], f: &mut dyn FnMut(&Expr<'a>)) {
    for arg in args {
        match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => visit_expr(e, f),
        }
    }
}

fn visit_expr<'a>(expr: &Expr<'a>, f: &mut dyn FnMut(&Expr<'a>)) {
    f(expr);
    match expr {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => std::iter::once(&s.expr).chain(&s.start).chain(&s.stop).chain(&s.step).for_each(|e| visit_expr(e, f)),
        Expr::UnaryOp(u) => visit_expr(&u.expr, f),
        Expr::BinOp(b) => [&b.left, &b.right].into_iter().for_each(|e| visit_expr(e, f)),
        Expr::Compare(c) => {
            visit_expr(&c.expr, f);
            c.ops.iter().for_each(|op| visit_expr(&op.expr, f));
        }
        Expr::IfExpr(i) => [&i.test_expr, &i.true_expr].into_iter().chain(&i.false_expr).for_each(|e| visit_expr(e, f)),
        Expr::Filter(x) => {
            x.expr.iter().for_each(|e| visit_expr(e, f));
            visit_args(&x.args, f);
        }
        Expr::Test(t) => {
            visit_expr(&t.expr, f);
            visit_args(&t.args, f);
        }
        Expr::GetAttr(g) => visit_expr(&g.expr, f),
        Expr::GetItem(g) => [&g.expr, &g.subscript_expr].into_iter().for_each(|e| visit_expr(e, f)),
        Expr::Call(c) => visit_call(c, f),
        Expr::List(l) => l.items.iter().for_each(|e| visit_expr(e, f)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| visit_expr(e, f)),
    }
}

#[cfg(test)]
mod tests {
    /// The error a template gives, or its text.
    fn render(template: &str) -> Result<String, String> {
        crate::chat::render(template, &[("user", "hi")], "<s>", "</s>").map_err(|e| e.to_string())
    }

    fn refused(template: &str, why: &str) {
        let err = render(template).expect_err(template);
        assert!(err.contains(why), "{template}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn operators_keep_their_meaning() {
        // The same text as minijinja's own operators give.
        for template in [
            "{% set ns = namespace(s='', n=0) %}{% for m in messages %}{% set ns.s = ns.s + m.content ~ '!' %}\
             {% set ns.n = ns.n + 2 * 3 %}{% endfor %}{{ ns.s }}{{ ns.n }}",
            "{{ ('ab' * 3)[1:-1] }}{{ [1, 2] + [3] }}{{ messages[0].content[::-1] }}{{ 'x' ~ 1 ~ none }}",
            "{% set t = messages[0].content %}{{ t ~ t }}{{ t * 2 }}{{ (t + '!')[:2] }}{{ [t] * 2 }}{{ 1.5 + 2 }}",
        ] {
            let mut stock = minijinja::Environment::new();
            stock.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
            let expected = stock.render_str(template, minijinja::context! { messages => [minijinja::context! { content => "hi" }] });
            assert_eq!(render(template).unwrap(), expected.unwrap(), "{template}");
        }
    }

    #[test]
    fn doubling_a_string_is_stopped() {
        // Finding 5 of the fuzzing campaign: 24 doublings were 134 MB.
        refused("{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}", "`~` would build");
        refused("{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "`+` would build");
        refused("{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = '%s%s'|format(ns.s, ns.s) %}{% endfor %}", "`format` would build");
        refused("{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = [ns.s, ns.s]|join %}{% endfor %}", "`join`");
        refused("{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = ns.s.replace('0', ns.s) %}{% endfor %}", "`replace` would build");
        refused("{% macro twice(s, n) %}{% if n %}{{ twice(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ twice('0123456789', 40) }}", "would build");
    }

    #[test]
    fn doubling_a_list_is_stopped() {
        // `l + l` is lazy in minijinja: 2^40 items cost nothing until a filter walks them.
        refused("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}", "would build");
        refused("{{ (range(100000) * 100000)|list|length }}", "`*` would build");
    }

    #[test]
    fn empty_sequences_cost_their_steps() {
        // Campaign finding: 77,777,777 × 76 repeats of an empty list, folded at compile time,
        // hung the first walk over it.
        refused("{{077777777*()*76*('x') }}", "a constant of more than");
        refused("{{ [] * 77777777 }}", "a constant of more than");
        refused("{% set n = 77777777 %}{{ ([] * n)|length }}", "`*` would build");
        // Lazily doubled empty lists: flat after each step, so each step costs nothing.
        let template = "{% set ns = namespace(l=[]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}\
                        {% set ns.l = ns.l|chain(ns.l) %}{% endfor %}{{ ns.l|length }}";
        assert_eq!(render(template).unwrap(), "0");
    }

    #[test]
    fn amplifying_filters_are_measured_first() {
        refused("{{ '%99999999s'|format('x') }}", "`format` would build");
        refused("{{ messages|tojson(indent=99999999) }}", "a count or width");
        refused("{{ 'a\na\na'|indent(99999999) }}", "a count or width");
        refused("{{ [1]|batch(99999999, 'x')|list }}", "a count or width");
        refused("{{ ('ab' * 1000000)|replace('', '0123456789') }}", "`replace` would build");
    }

    #[test]
    fn constants_are_measured_before_they_are_folded() {
        refused("{{ ('0123456789' * 9999999) ~ 'x' }}", "a constant of more than");
        refused("{{ 'a' * 2000 * 2000 }}", "a constant of more than");
    }

    #[test]
    fn everything_built_is_counted() {
        // Each value is small; together they pass the bound.
        refused("{% set big = 'x' * 1000000 %}{% for i in range(100) %}{{ big }}{% endfor %}", "built more than");
        refused("{% set ns = namespace(s='') %}{% for i in range(100) %}{% set ns.s = ('x' * 1000000) ~ i %}{% endfor %}", "built more than");
    }

    #[test]
    fn raw_text_is_bounded_by_steps() {
        // The longest piece of text × the steps allowed stays under MAX_RAW_BYTES.
        let text = "x".repeat(10_000);
        let template = format!("{{% set s %}}{{% for i in range(1000) %}}{text}{{% endfor %}}{{% endset %}}{{{{ s|length }}}}");
        refused(&template, "fuel");
        let template = format!("{{% for i in range(100) %}}{text}{{% endfor %}}");
        assert_eq!(render(&template).unwrap().len(), 100 * text.len());
    }

    #[test]
    fn namespaces_hold_no_cycles() {
        // Campaign finding 7: `ns.s = (ns, ...)` made a reference cycle, leaked at every render
        // (LeakSanitizer in the fuzz target; the input is a seed). Stored, a namespace is a
        // snapshot of what it held.
        let template = "{% set ns = namespace(a=1) %}{% set ns.me = [ns] %}{% set ns.a = 2 %}{{ ns.me[0].a }} {{ ns.a }}";
        assert_eq!(render(template).unwrap(), "1 2");
        let template = "{% set ns = namespace(s='ab', n=0) %}{% for i in range(11) %}{% set ns.s = ns, i %}\
                        {% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }} {{ ns.s[1] }} {{ ns.s[0].n }}";
        assert_eq!(render(template).unwrap(), "11 10 10");
    }

    #[test]
    fn reserved_names_are_refused() {
        refused("{{ __edgeslm_concat('a', 'b') }}", "reserves");
    }
}
