//! Stable diagnostic codes. Each has a page `docs/errors/<code>.md` (cause and fix); never
//! reuse or renumber a code.

// Names and references.
/// The same id is declared twice.
pub const DUPLICATE: &str = "YM0100";
/// An edge goes to a node that does not exist.
pub const UNKNOWN_NODE: &str = "YM0101";
/// The process has no start event.
pub const NO_START: &str = "YM0102";
/// The process has more than one start event.
pub const MANY_STARTS: &str = "YM0103";
/// The process has no end event.
pub const NO_END: &str = "YM0104";
/// A task, follow-up or notification names a role that is not declared.
pub const UNKNOWN_ROLE: &str = "YM0105";
/// A clock that is not declared.
pub const UNKNOWN_CLOCK: &str = "YM0106";
/// A document that is not declared.
pub const UNKNOWN_DOCUMENT: &str = "YM0107";
/// A channel that is not declared.
pub const UNKNOWN_CHANNEL: &str = "YM0108";
/// A calendar that does not exist.
pub const UNKNOWN_CALENDAR: &str = "YM0109";
/// A type names an enum that is not declared.
pub const UNKNOWN_TYPE: &str = "YM0110";
/// A variable that is not declared (fields, requires, set, scope).
pub const UNKNOWN_VAR: &str = "YM0111";
/// `call ... process X` where X is not imported or could not be loaded.
pub const UNKNOWN_PROCESS: &str = "YM0112";
/// A `with` input that is not a variable of the child process.
pub const UNKNOWN_INPUT: &str = "YM0113";
/// Two outcomes of a task have the same key.
pub const DUPLICATE_OUTCOME: &str = "YM0114";
/// A role no task uses (warning).
pub const UNUSED_ROLE: &str = "YM0115";
/// A keyed role without its key, or a key on a role that has none.
pub const ROLE_KEY: &str = "YM0116";
/// A scoped role whose scope variable is missing or of the wrong type.
pub const ROLE_SCOPE: &str = "YM0117";
/// `completed_by(x)` where x is not a task.
pub const ASSIGNEE_NOT_TASK: &str = "YM0118";
/// A task without outcomes.
pub const NO_OUTCOME: &str = "YM0119";
/// The start event is the target of an edge.
pub const EDGE_TO_START: &str = "YM0120";
/// A required variable is missing from a child process's `with` inputs.
pub const MISSING_INPUT: &str = "YM0121";
/// A variable named like an enum value, or a for-each item named like a variable (warning).
pub const AMBIGUOUS_NAME: &str = "YM0122";
/// A clock, document or channel that nothing uses (warning).
pub const UNUSED_DECL: &str = "YM0123";
/// A clock is paused somewhere but resumed nowhere (warning).
pub const NEVER_RESUMED: &str = "YM0124";
/// Retired: a task queued on a built-in read-only role. Roles and their duties are now the
/// process's own (`oversees`), and a role's holders work its queue.
pub const UNCLAIMABLE_QUEUE: &str = "YM0125";
/// `notify applicant` in a process where no role `informs applicant` (warning).
pub const NO_INFORMER: &str = "YM0126";
/// `oversees` or `informs applicant` on a keyed role.
pub const KEYED_ROLE_DUTY: &str = "YM0127";
/// `reassigns r` where `r` is not a role the process declares.
pub const REASSIGNS_UNKNOWN_ROLE: &str = "YM0128";

// Flow graph.
/// A node cannot be reached from the start.
pub const UNREACHABLE: &str = "YM0200";
/// From a node no end can be reached.
pub const NO_WAY_OUT: &str = "YM0201";
/// An exclusive choice without default whose conditions may all be false.
pub const NOT_EXHAUSTIVE: &str = "YM0202";
/// A default of a choice whose conditions are already exhaustive (warning).
pub const DEAD_DEFAULT: &str = "YM0203";
/// A join that can wait forever.
pub const JOIN_DEADLOCK: &str = "YM0204";
/// Two tokens can reach a node that is not a join.
pub const RACE: &str = "YM0205";
/// An end can be reached while other branches are still running.
pub const END_WHILE_RUNNING: &str = "YM0206";
/// The parallel structure is too complex to verify.
pub const TOO_COMPLEX: &str = "YM0207";
/// A split with fewer than two branches or a join with fewer than two incoming edges (warning).
pub const TRIVIAL_GATEWAY: &str = "YM0208";
/// The flow can loop forever without reaching an end while branches wait.
pub const STUCK: &str = "YM0209";

// Expressions and types.
/// A name in an expression that is neither a variable nor an enum value nor an item.
pub const UNKNOWN_NAME: &str = "YM0300";
/// A value of the wrong type (assignment, default, input, key).
pub const TYPE_MISMATCH: &str = "YM0301";
/// A comparison of values of unlike types.
pub const BAD_COMPARISON: &str = "YM0302";
/// Arithmetic on values that are not numbers, dates or durations.
pub const BAD_ARITHMETIC: &str = "YM0303";
/// `x in xs` where xs is not a list of x's type.
pub const BAD_IN: &str = "YM0304";
/// A condition that is not boolean.
pub const NOT_BOOLEAN: &str = "YM0305";
/// A duration was expected.
pub const NOT_DURATION: &str = "YM0306";
/// An unknown built-in or one called with the wrong arguments.
pub const BAD_CALL: &str = "YM0307";
/// Field access on something that has no such field.
pub const BAD_FIELD: &str = "YM0308";
/// Indexing something that is not a map or list, or with a key of the wrong type.
pub const BAD_INDEX: &str = "YM0309";
/// A literal that is not valid (a date that does not exist, a negative duration).
pub const BAD_LITERAL: &str = "YM0310";

// Configuration.
/// A `config.x` reference to a key not declared in the config block.
pub const UNDECLARED_CONFIG: &str = "YM0400";
/// A declared configuration key is missing from the YAML file.
pub const MISSING_CONFIG: &str = "YM0401";
/// A configuration value of the wrong type.
pub const CONFIG_TYPE: &str = "YM0402";
/// A configuration map does not cover every value of its enum key (or has unknown keys).
pub const CONFIG_MAP_KEYS: &str = "YM0403";
/// `enum x from config key` where the key is not a map in the YAML.
pub const CONFIG_ENUM: &str = "YM0404";
/// The process reads configuration but declares no `config` block.
pub const NO_CONFIG: &str = "YM0405";
/// `start_roles` in the YAML is not a list of roles the process knows.
pub const START_ROLES: &str = "YM0406";
/// `ledger_columns` in the YAML is not a list of variables of the process.
pub const LEDGER_COLUMNS: &str = "YM0407";
/// A channel's entry in the YAML is not one the engine can send to (kind, URL, settings).
pub const CHANNEL_CONFIG: &str = "YM0408";
/// A template of an SMS channel does not render.
pub const CHANNEL_TEMPLATE: &str = "YM0409";
/// A secret written in the YAML instead of the server's environment.
pub const SECRET_IN_CONFIG: &str = "YM0410";
/// `statistics` in the YAML names a variable, task, result or role the process does not have.
pub const STATISTICS: &str = "YM0411";

// Personal data.
/// A personal-data variable written unmasked into a notification (warning).
pub const PERSONAL_IN_MESSAGE: &str = "YM0500";

/// Every code with a one-line summary, for `docs/errors` and tests.
pub const ALL: &[(&str, &str)] = &[
    (DUPLICATE, "duplicate id"),
    (UNKNOWN_NODE, "edge to an unknown node"),
    (NO_START, "no start event"),
    (MANY_STARTS, "more than one start event"),
    (NO_END, "no end event"),
    (UNKNOWN_ROLE, "unknown role"),
    (UNKNOWN_CLOCK, "unknown clock"),
    (UNKNOWN_DOCUMENT, "unknown document"),
    (UNKNOWN_CHANNEL, "unknown channel"),
    (UNKNOWN_CALENDAR, "unknown calendar"),
    (UNKNOWN_TYPE, "unknown type"),
    (UNKNOWN_VAR, "unknown variable"),
    (UNKNOWN_PROCESS, "unknown process"),
    (UNKNOWN_INPUT, "unknown input of a child process"),
    (DUPLICATE_OUTCOME, "duplicate outcome"),
    (UNUSED_ROLE, "unused role"),
    (ROLE_KEY, "role key missing or not allowed"),
    (ROLE_SCOPE, "bad role scope"),
    (ASSIGNEE_NOT_TASK, "completed_by names no task"),
    (NO_OUTCOME, "task without outcomes"),
    (EDGE_TO_START, "edge into the start event"),
    (MISSING_INPUT, "required input of a child process missing"),
    (AMBIGUOUS_NAME, "ambiguous name"),
    (UNUSED_DECL, "unused clock, document or channel"),
    (NEVER_RESUMED, "clock paused but never resumed"),
    (
        UNCLAIMABLE_QUEUE,
        "task queue only an admin can claim (retired)",
    ),
    (NO_INFORMER, "no role reads the notices to the applicant"),
    (
        KEYED_ROLE_DUTY,
        "a keyed role cannot oversee or inform the applicant",
    ),
    (
        REASSIGNS_UNKNOWN_ROLE,
        "a role reassigns the tasks of a role not declared",
    ),
    (UNREACHABLE, "node unreachable from the start"),
    (NO_WAY_OUT, "no end reachable"),
    (NOT_EXHAUSTIVE, "choice without default may match nothing"),
    (DEAD_DEFAULT, "default can never be taken"),
    (JOIN_DEADLOCK, "join can wait forever"),
    (RACE, "two tokens reach a non-join node"),
    (END_WHILE_RUNNING, "end reached while branches still run"),
    (TOO_COMPLEX, "parallel structure too complex to verify"),
    (TRIVIAL_GATEWAY, "split or join with a single branch"),
    (STUCK, "flow can get stuck"),
    (UNKNOWN_NAME, "unknown name in an expression"),
    (TYPE_MISMATCH, "value of the wrong type"),
    (BAD_COMPARISON, "comparison of unlike types"),
    (BAD_ARITHMETIC, "arithmetic on unsuitable values"),
    (BAD_IN, "`in` needs a list of the element type"),
    (NOT_BOOLEAN, "condition is not boolean"),
    (NOT_DURATION, "duration expected"),
    (BAD_CALL, "unknown built-in or wrong arguments"),
    (BAD_FIELD, "no such field"),
    (BAD_INDEX, "bad index"),
    (BAD_LITERAL, "invalid literal"),
    (UNDECLARED_CONFIG, "undeclared configuration key"),
    (MISSING_CONFIG, "configuration key missing from the YAML"),
    (CONFIG_TYPE, "configuration value of the wrong type"),
    (
        CONFIG_MAP_KEYS,
        "configuration map keys do not match the enum",
    ),
    (CONFIG_ENUM, "enum from configuration has no map"),
    (NO_CONFIG, "configuration used but not declared"),
    (START_ROLES, "`start_roles` names no known role"),
    (LEDGER_COLUMNS, "`ledger_columns` names no variable"),
    (
        CHANNEL_CONFIG,
        "channel configuration the engine cannot send to",
    ),
    (CHANNEL_TEMPLATE, "SMS channel template does not render"),
    (SECRET_IN_CONFIG, "secret written in the configuration"),
    (
        STATISTICS,
        "`statistics` names no variable, task, result or role",
    ),
    (PERSONAL_IN_MESSAGE, "personal data in a message"),
];
