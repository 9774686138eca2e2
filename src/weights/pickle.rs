//! A small pickle virtual machine: the subset of opcodes that `torch.save` emits (protocol 2, the
//! PyTorch default up to 2.11) plus the few protocol 0/1/3/4 opcodes older or newer writers use for
//! the same values. Semantics follow CPython's `Lib/pickle.py` (`_Unpickler`).
//!
//! The machine is deliberately closed: a GLOBAL outside the caller's allow-list, or any opcode not
//! listed here, stops it with the byte offset of the opcode, never with a guess. It builds plain
//! values; the meaning of torch globals (tensors, storages) is the caller's (`torch_file.rs`).

use std::cell::RefCell;
use std::rc::Rc;

/// A decoded pickle value. Lists, dicts and objects are shared (`Rc`) because the memo hands out
/// references to the same mutable object, as Python does.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64: little-endian two's complement bytes, as LONG1/LONG4 carry them.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Dict>>),
    /// A class or function named by GLOBAL, not (yet) called.
    Global {
        module: String,
        name: String,
    },
    /// The result of calling an allowed global the machine has no built-in meaning for.
    Object(Rc<RefCell<Object>>),
    /// What BINPERSID loaded: the persistent id itself, to be resolved by the caller.
    PersistentId(Box<Value>),
}

/// dict and collections.OrderedDict, in insertion order; `attributes` holds what BUILD set on it
/// (for a state_dict: `_metadata`).
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub entries: Vec<(Value, Value)>,
    pub attributes: Vec<(String, Value)>,
}

/// `module.name(*args)` with the state BUILD gave it; `offset` is the REDUCE/NEWOBJ byte.
#[derive(Debug)]
pub(crate) struct Object {
    pub module: String,
    pub name: String,
    pub args: Vec<Value>,
    pub state: Option<Value>,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PickleError {
    pub offset: u64,
    pub reason: String,
}

/// One pickle from `start` to its STOP opcode.
#[derive(Debug)]
pub(crate) struct Unpickled {
    pub value: Value,
    /// Every persistent id in load order, so the legacy format can size storages before reading them.
    pub persistent_ids: Vec<Value>,
    /// The byte after STOP, where a following pickle or raw data begins.
    pub end: usize,
}

enum Builtin {
    OrderedDict,
    CodecsEncode,
}

fn builtin(module: &str, name: &str) -> Option<Builtin> {
    match (module, name) {
        ("collections", "OrderedDict") => Some(Builtin::OrderedDict),
        ("_codecs", "encode") => Some(Builtin::CodecsEncode),
        _ => None,
    }
}

/// Runs one pickle that starts at `data[start]`. `allowed(module, name)` says which GLOBALs beyond
/// the built-in `collections.OrderedDict` and `_codecs.encode` may appear.
pub(crate) fn unpickle(
    data: &[u8],
    start: usize,
    allowed: &dyn Fn(&str, &str) -> bool,
) -> Result<Unpickled, PickleError> {
    let mut vm = Machine {
        data,
        pos: start,
        op_start: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Default::default(),
        persistent_ids: Vec::new(),
    };
    let value = vm.run(allowed)?;
    Ok(Unpickled { value, persistent_ids: vm.persistent_ids, end: vm.pos })
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK (CPython's metastack).
    marks: Vec<usize>,
    memo: std::collections::HashMap<u32, Value>,
    persistent_ids: Vec<Value>,
}

impl<'a> Machine<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError { offset: self.op_start as u64, reason: reason.into() })
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let bytes = &self.data[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => self
                .err(format!("truncated: {what} needs {n} bytes, the data ends at byte {}", self.data.len())),
        }
    }

    fn take_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A newline-terminated text argument (protocol 0 opcodes, GLOBAL).
    fn take_line(&mut self, what: &str) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            return self.err(format!("truncated: {what} has no terminating newline"));
        };
        self.pos += len + 1;
        match std::str::from_utf8(&rest[..len]) {
            Ok(s) => Ok(s),
            Err(_) => self.err(format!("{what} is not UTF-8")),
        }
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        let offset = self.op_start as u64;
        self.stack.last_mut().ok_or(PickleError { offset, reason: "stack underflow".into() })
    }

    /// Everything above the most recent MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return self.err("no MARK on the stack");
        };
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, index: u32) -> Result<(), PickleError> {
        let offset = self.op_start as u64;
        let top = self.stack.last().ok_or(PickleError { offset, reason: "PUT on an empty stack".into() })?;
        self.memo.insert(index, top.clone());
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), PickleError> {
        match self.memo.get(&index) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => self.err(format!("memo entry {index} was never stored")),
        }
    }

    fn run(&mut self, allowed: &dyn Fn(&str, &str) -> bool) -> Result<Value, PickleError> {
        loop {
            self.op_start = self.pos;
            let [op] = self.take_array::<1>("opcode")?;
            match op {
                0x80 => {
                    // PROTO
                    let [version] = self.take_array::<1>("PROTO")?;
                    if version > 5 {
                        return self.err(format!("pickle protocol {version} is unknown"));
                    }
                }
                0x95 => {
                    // FRAME (protocol 4): only a length hint for buffered readers.
                    self.take(8, "FRAME")?;
                }
                b'.' => {
                    // STOP
                    let value = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return self.err("STOP with values left on the stack");
                    }
                    return Ok(value);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top_mut()?.clone();
                    self.stack.push(top);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.take_array("BININT")?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let [v] = self.take_array::<1>("BININT1")?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_array("BININT2")?);
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let [n] = self.take_array::<1>("LONG1")?;
                    let bytes = self.take(n as usize, "LONG1")?;
                    self.stack.push(long_value(bytes));
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.take_array("LONG4")?);
                    if n < 0 {
                        return self.err("LONG4 with a negative length");
                    }
                    let bytes = self.take(n as usize, "LONG4")?;
                    self.stack.push(long_value(bytes));
                }
                b'I' => {
                    // INT (protocol 0): "01"/"00" are True/False in protocol 0/1 pickles.
                    let line = self.take_line("INT")?;
                    let value = match line {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        text => match text.parse::<i64>() {
                            Ok(v) => Value::Int(v),
                            Err(_) => return self.err(format!("INT operand {text:?} is not an integer")),
                        },
                    };
                    self.stack.push(value);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take_array("BINFLOAT")?);
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.take_array("BINUNICODE")?) as usize;
                    let s = self.utf8(n, "BINUNICODE")?;
                    self.stack.push(Value::Str(s));
                }
                0x8c => {
                    let [n] = self.take_array::<1>("SHORT_BINUNICODE")?;
                    let s = self.utf8(n as usize, "SHORT_BINUNICODE")?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.take_array("BINUNICODE8")?);
                    let s = self.utf8(usize::try_from(n).unwrap_or(usize::MAX), "BINUNICODE8")?;
                    self.stack.push(Value::Str(s));
                }
                b'T' | b'U' => {
                    // BINSTRING / SHORT_BINSTRING: Python 2 `str`, read as latin-1 like
                    // `torch.load(encoding='latin1')`.
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.take_array("BINSTRING")?);
                        if n < 0 {
                            return self.err("BINSTRING with a negative length");
                        }
                        n as usize
                    } else {
                        self.take_array::<1>("SHORT_BINSTRING")?[0] as usize
                    };
                    let bytes = self.take(n, "BINSTRING")?;
                    self.stack.push(Value::Str(bytes.iter().map(|&b| b as char).collect()));
                }
                b'C' => {
                    let [n] = self.take_array::<1>("SHORT_BINBYTES")?;
                    let bytes = self.take(n as usize, "SHORT_BINBYTES")?.to_vec();
                    self.stack.push(Value::Bytes(bytes));
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.take_array("BINBYTES")?) as usize;
                    let bytes = self.take(n, "BINBYTES")?.to_vec();
                    self.stack.push(Value::Bytes(bytes));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    // TUPLE1..TUPLE3
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return self.err("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b']' => self.stack.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'a' => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => self.stack.push(Value::Dict(Default::default())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let dict = Rc::new(RefCell::new(Dict::default()));
                    self.stack.push(Value::Dict(dict));
                    self.set_items(items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let module = self.take_line("GLOBAL module")?.to_string();
                    let name = self.take_line("GLOBAL name")?.to_string();
                    self.push_global(module, name, allowed)?;
                }
                0x93 => {
                    // STACK_GLOBAL (protocol 4)
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => self.push_global(module, name, allowed)?,
                        _ => return self.err("STACK_GLOBAL operands are not strings"),
                    }
                }
                b'R' | 0x81 => {
                    // REDUCE callable(*args) / NEWOBJ cls.__new__(cls, *args): for the classes
                    // allowed here both mean construction from args.
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.call(callable, args)?;
                    self.stack.push(value);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top_mut()?.clone();
                    self.build(target, state)?;
                }
                b'q' => {
                    let [i] = self.take_array::<1>("BINPUT")?;
                    self.memo_put(i as u32)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.take_array("LONG_BINPUT")?);
                    self.memo_put(i)?;
                }
                b'p' => {
                    let line = self.take_line("PUT")?;
                    let Ok(i) = line.parse::<u32>() else {
                        return self.err(format!("PUT index {line:?} is not an integer"));
                    };
                    self.memo_put(i)?;
                }
                0x94 => {
                    // MEMOIZE (protocol 4): the next free index.
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let [i] = self.take_array::<1>("BINGET")?;
                    self.memo_get(i as u32)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.take_array("LONG_BINGET")?);
                    self.memo_get(i)?;
                }
                b'g' => {
                    let line = self.take_line("GET")?;
                    let Ok(i) = line.parse::<u32>() else {
                        return self.err(format!("GET index {line:?} is not an integer"));
                    };
                    self.memo_get(i)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.persistent_ids.push(pid.clone());
                    self.stack.push(Value::PersistentId(Box::new(pid)));
                }
                b'P' => {
                    let pid = Value::Str(self.take_line("PERSID")?.to_string());
                    self.persistent_ids.push(pid.clone());
                    self.stack.push(Value::PersistentId(Box::new(pid)));
                }
                other => return self.err(format!("opcode {} is not supported", opcode_name(other))),
            }
        }
    }

    fn utf8(&mut self, n: usize, what: &str) -> Result<String, PickleError> {
        let bytes = self.take(n, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err(format!("{what} operand is not UTF-8")),
        }
    }

    fn push_global(
        &mut self,
        module: String,
        name: String,
        allowed: &dyn Fn(&str, &str) -> bool,
    ) -> Result<(), PickleError> {
        if builtin(&module, &name).is_none() && !allowed(&module, &name) {
            return self.err(format!(
                "global {module}.{name} is not supported (only what state_dicts and checkpoints hold)"
            ));
        }
        self.stack.push(Value::Global { module, name });
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        match self.top_mut()? {
            Value::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => {
                let kind = kind_name(other);
                self.err(format!("APPEND to a {kind}, not a list"))
            }
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of values");
        }
        match self.top_mut()? {
            Value::Dict(dict) => {
                let mut dict = dict.borrow_mut();
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.entries.push((k, v));
                }
                Ok(())
            }
            other => {
                let kind = kind_name(other);
                self.err(format!("SETITEM on a {kind}, not a dict"))
            }
        }
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Global { module, name } = callable else {
            return self.err(format!("REDUCE of a {}, not a global", kind_name(&callable)));
        };
        let Value::Tuple(args) = args else {
            return self.err(format!("REDUCE arguments of {module}.{name} are not a tuple"));
        };
        match builtin(&module, &name) {
            Some(Builtin::OrderedDict) => self.ordered_dict(args),
            Some(Builtin::CodecsEncode) => match args.as_slice() {
                // How protocol 2 writes Python 3 `bytes`: _codecs.encode(latin-1 text, 'latin1').
                [Value::Str(text), Value::Str(enc)] if enc == "latin1" || enc == "latin-1" => {
                    let mut bytes = Vec::with_capacity(text.len());
                    for c in text.chars() {
                        match u8::try_from(c as u32) {
                            Ok(b) => bytes.push(b),
                            Err(_) => return self.err("_codecs.encode: character outside latin-1"),
                        }
                    }
                    Ok(Value::Bytes(bytes))
                }
                _ => self.err("_codecs.encode with arguments other than (text, 'latin1')"),
            },
            None => Ok(Value::Object(Rc::new(RefCell::new(Object {
                module,
                name,
                args,
                state: None,
                offset: self.op_start as u64,
            })))),
        }
    }

    fn ordered_dict(&mut self, args: Vec<Value>) -> Result<Value, PickleError> {
        let mut dict = Dict::default();
        match args.as_slice() {
            [] => {}
            [Value::List(pairs)] => {
                for pair in pairs.borrow().iter() {
                    match pair {
                        Value::Tuple(kv) if kv.len() == 2 => {
                            dict.entries.push((kv[0].clone(), kv[1].clone()))
                        }
                        _ => return self.err("OrderedDict items are not (key, value) pairs"),
                    }
                }
            }
            _ => return self.err("OrderedDict with arguments other than () or ([pairs],)"),
        }
        Ok(Value::Dict(Rc::new(RefCell::new(dict))))
    }

    fn build(&mut self, target: Value, state: Value) -> Result<(), PickleError> {
        match target {
            Value::Dict(dict) => {
                // BUILD on a dict subclass sets instance attributes: state is the instance
                // __dict__, or (instance dict or None, slot dict) per object.__reduce_ex__.
                let attrs = match state {
                    Value::Dict(d) => d,
                    Value::Tuple(ref parts) if parts.len() == 2 => match &parts[0] {
                        Value::Dict(d) => d.clone(),
                        Value::None => return Ok(()),
                        _ => return self.err("BUILD state of a dict is not a dict"),
                    },
                    Value::None => return Ok(()),
                    _ => return self.err("BUILD state of a dict is not a dict"),
                };
                // Copied out first: a damaged pickle may BUILD a dict with itself as state.
                let attrs = attrs.borrow().entries.clone();
                let mut dict = dict.borrow_mut();
                for (k, v) in &attrs {
                    match k {
                        Value::Str(name) => dict.attributes.push((name.clone(), v.clone())),
                        _ => return self.err("BUILD attribute name is not a string"),
                    }
                }
                Ok(())
            }
            Value::Object(object) => {
                object.borrow_mut().state = Some(state);
                Ok(())
            }
            other => self.err(format!("BUILD on a {}", kind_name(&other))),
        }
    }
}

/// LONG1/LONG4 operand: little-endian two's complement.
fn long_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() > 8 {
        return Value::BigInt(bytes.to_vec());
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(buf))
}

pub(crate) fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global { .. } => "global",
        Value::Object(_) => "object",
        Value::PersistentId(_) => "persistent id",
    }
}

/// Names for the opcodes we refuse, so the error says which one was met.
fn opcode_name(op: u8) -> String {
    let name = match op {
        b'F' => "FLOAT",
        b'L' => "LONG",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "",
    };
    if name.is_empty() {
        format!("0x{op:02x}")
    } else {
        format!("{name} (0x{op:02x})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none_allowed(_: &str, _: &str) -> bool {
        false
    }

    fn run(bytes: &[u8]) -> Result<Unpickled, PickleError> {
        unpickle(bytes, 0, &none_allowed)
    }

    #[test]
    fn decodes_scalars_in_a_tuple() {
        // (True, None, 3, 300, -2, 1.5, 'ab', big) as protocol 2
        let mut p = vec![0x80, 2, b'(', 0x88, b'N', b'K', 3, b'M', 0x2c, 0x01, b'J'];
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(1.5f64.to_be_bytes());
        p.extend([b'X', 2, 0, 0, 0, b'a', b'b']);
        p.extend([0x8a, 1, 0xff]); // LONG1 -1
        p.extend([b't', b'.']);
        let out = run(&p).expect("valid pickle");
        let Value::Tuple(items) = out.value else { panic!("not a tuple: {:?}", out.value) };
        assert!(matches!(items[0], Value::Bool(true)));
        assert!(matches!(items[1], Value::None));
        assert!(matches!(items[2], Value::Int(3)));
        assert!(matches!(items[3], Value::Int(300)));
        assert!(matches!(items[4], Value::Int(-2)));
        assert!(matches!(items[5], Value::Float(f) if f == 1.5));
        assert!(matches!(&items[6], Value::Str(s) if s == "ab"));
        assert!(matches!(items[7], Value::Int(-1)));
        assert_eq!(out.end, p.len());
    }

    #[test]
    fn memo_shares_mutable_lists() {
        // l = []; memo[0] = l; l.append(1); (l, memo[0]) -> both see the append
        let p = [0x80, 2, b']', b'q', 0, b'K', 1, b'a', b'h', 0, 0x86, b'.'];
        let out = run(&p).expect("valid pickle");
        let Value::Tuple(items) = out.value else { panic!("not a tuple") };
        for item in &items {
            let Value::List(list) = item else { panic!("not a list") };
            assert_eq!(list.borrow().len(), 1);
        }
    }

    #[test]
    fn big_long_is_kept_as_bytes() {
        let p = [0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, b'.'];
        let out = run(&p).expect("valid pickle");
        assert!(matches!(out.value, Value::BigInt(ref b) if b == &[1, 2, 3, 4, 5, 6, 7, 8, 9]));
    }

    #[test]
    fn unknown_opcode_names_opcode_and_offset() {
        let p = [0x80, 2, b'K', 1, 0x8f, b'.'];
        let err = run(&p).expect_err("EMPTY_SET is not supported");
        assert_eq!(err.offset, 4);
        assert!(err.reason.contains("EMPTY_SET"), "{}", err.reason);
    }

    #[test]
    fn disallowed_global_names_global_and_offset() {
        let mut p = vec![0x80, 2, b'c'];
        p.extend(b"os\nsystem\n");
        p.push(b'.');
        let err = run(&p).expect_err("os.system must be refused");
        assert_eq!(err.offset, 2);
        assert!(err.reason.contains("os.system"), "{}", err.reason);
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let p = [0x80, 2, b'X', 10, 0, 0, 0, b'a'];
        let err = run(&p).expect_err("string runs past the end");
        assert_eq!(err.offset, 2);
        assert!(err.reason.contains("truncated"), "{}", err.reason);
        let err = run(&[0x80, 2, b'K', 1]).expect_err("no STOP");
        assert!(err.reason.contains("truncated"), "{}", err.reason);
    }

    #[test]
    fn ordered_dict_with_build_attributes() {
        // OrderedDict() ; SETITEM 'a' 1 ; BUILD {'_metadata': 7}
        let mut p = vec![0x80, 2, b'c'];
        p.extend(b"collections\nOrderedDict\n");
        p.extend([b')', b'R', b'X', 1, 0, 0, 0, b'a', b'K', 1, b's', b'}']);
        p.extend([b'X', 9, 0, 0, 0]);
        p.extend(b"_metadata");
        p.extend([b'K', 7, b's', b'b', b'.']);
        let out = run(&p).expect("valid pickle");
        let Value::Dict(dict) = out.value else { panic!("not a dict") };
        let dict = dict.borrow();
        assert_eq!(dict.entries.len(), 1);
        assert_eq!(dict.attributes.len(), 1);
        assert_eq!(dict.attributes[0].0, "_metadata");
    }

    #[test]
    fn long_memo_indices_round_trip() {
        // LONG_BINPUT 300 / LONG_BINGET 300, as pickles with more than 256 memo entries use.
        let p = [0x80, 2, b'K', 9, b'r', 0x2c, 0x01, 0, 0, b'j', 0x2c, 0x01, 0, 0, 0x86, b'.'];
        let out = run(&p).expect("valid pickle");
        assert!(matches!(out.value, Value::Tuple(ref v) if matches!(v[..], [Value::Int(9), Value::Int(9)])));
    }

    #[test]
    fn self_referencing_values_do_not_panic() {
        // d = {}; d.__dict__.update(d)  and  l = []; l.append(l)
        assert!(run(b"}2b.").is_ok());
        assert!(run(b"]2a.").is_ok());
    }

    #[test]
    fn stack_underflow_is_an_error_not_a_panic() {
        for p in [&[0x80u8, 2, b'R', b'.'][..], &[b'(', b'a', b'.'][..], &[b'h', 3, b'.'][..], &[b'.'][..]] {
            assert!(run(p).is_err(), "{p:?}");
        }
    }
}
