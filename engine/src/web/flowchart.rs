//! The case page's flowchart: the process diagram laid out on the server by `layout-rs` (a
//! pure-Rust layered layout of Graphviz's kind; no external program), drawn as inline SVG with
//! the case's active nodes marked.
//!
//! The layout of one process model is computed once and kept (keyed by a hash of what is
//! drawn, so two databases' "version 1" never share a drawing); a page only fills in which
//! boxes are active. Labels are wrapped at 12 wide characters a line, and boxes are sized at
//! one em a character, which CJK glyphs fill. The SVG uses presentation attributes and the
//! workbench's stylesheet, never inline styles (the pages' CSP refuses them).

use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};
use yimen_dsl::model::{ExprKind, NodeKind, Process, UnaryOp};

/// Display columns a box's line holds (a CJK character takes two).
const WRAP_COLUMNS: usize = 24;
/// The font size the layout sizes boxes with; text is drawn a little smaller, so that a
/// line of wide glyphs keeps a margin.
const LAYOUT_FONT: usize = 15;
const TEXT_FONT: usize = 14;
/// Edge labels longer than this many characters are cut (they run along the edge).
const EDGE_LABEL_CHARS: usize = 10;
/// Drawings kept; more are dropped all at once (a server runs a handful of versions).
const CACHE_LIMIT: usize = 64;

/// What a node is drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Event,
    Task,
    Step,
    Choice,
    Wait,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Task => "task",
            Kind::Step => "step",
            Kind::Choice => "choice",
            Kind::Wait => "wait",
        }
    }
}

/// What is drawn: nodes (id, wrapped label, kind) and edges (from, to, label).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Spec {
    nodes: Vec<(String, String, Kind)>,
    edges: Vec<(usize, usize, String)>,
}

/// Breaks `text` into lines of at most [`WRAP_COLUMNS`] display columns.
fn wrap(text: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    let mut width = 0;
    for ch in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if width + w > WRAP_COLUMNS && width > 0 {
            lines.push(String::new());
            width = 0;
        }
        if let Some(line) = lines.last_mut() {
            line.push(ch);
        }
        width += w;
    }
    lines.join("\n")
}

fn short(label: &str) -> String {
    if label.chars().count() <= EDGE_LABEL_CHARS {
        label.to_string()
    } else {
        let cut: String = label.chars().take(EDGE_LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// The nodes and edges of `model` as the chart draws them, with the process's labels: an
/// outcome by its label, a choice's branch by the variable it tests (else by its number).
fn spec(model: &Process) -> Spec {
    let var_label = |name: &str| {
        model
            .vars
            .iter()
            .find(|v| v.name.name == name)
            .map(|v| v.label.clone().unwrap_or_else(|| name.to_string()))
    };
    let index: HashMap<&str, usize> = model
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.name.as_str(), i))
        .collect();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let kind = match &node.kind {
            NodeKind::Start { .. } | NodeKind::End { .. } => Kind::Event,
            NodeKind::Task(_) => Kind::Task,
            NodeKind::Choice { .. } | NodeKind::Split { .. } | NodeKind::Join { .. } => {
                Kind::Choice
            }
            NodeKind::WaitMessage { .. } | NodeKind::WaitTimer { .. } => Kind::Wait,
            NodeKind::Step { .. } | NodeKind::StartProcess { .. } => Kind::Step,
        };
        let label = node
            .label
            .clone()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| node.id.name.clone());
        nodes.push((node.id.name.clone(), wrap(&label), kind));
        let mut to = |next: &str, label: String| {
            if let Some(&j) = index.get(next) {
                edges.push((i, j, label));
            }
        };
        match &node.kind {
            NodeKind::Start { next }
            | NodeKind::Step { next, .. }
            | NodeKind::Join { next }
            | NodeKind::WaitTimer { next, .. }
            | NodeKind::StartProcess { next, .. } => to(&next.name, String::new()),
            NodeKind::End { .. } => {}
            NodeKind::Task(task) => {
                for o in &task.outcomes {
                    let label = o.label.clone().unwrap_or_else(|| o.key.name.clone());
                    to(&o.next.name, short(&label));
                }
            }
            NodeKind::Choice { branches, default } => {
                for (k, b) in branches.iter().enumerate() {
                    let label = match &b.when.kind {
                        ExprKind::Name(n) => var_label(n),
                        ExprKind::Unary(UnaryOp::Not, inner) => match &inner.kind {
                            ExprKind::Name(n) => var_label(n).map(|l| format!("非：{l}")),
                            _ => None,
                        },
                        _ => None,
                    }
                    .unwrap_or_else(|| format!("条件{}", k + 1));
                    to(&b.next.name, short(&label));
                }
                if let Some(d) = default {
                    to(&d.name, "否则".to_string());
                }
            }
            NodeKind::Split { branches } => {
                for b in branches {
                    to(&b.name, String::new());
                }
            }
            NodeKind::WaitMessage { next, timeout, .. } => {
                to(&next.name, String::new());
                if let Some((_, t)) = timeout {
                    to(&t.name, "超时".to_string());
                }
            }
        }
    }
    Spec { nodes, edges }
}

/// A piece of the drawing: fixed text, or the class attribute of a node's shape (filled per
/// page with whether the node is active).
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Node(usize),
}

/// A laid-out chart, ready to be marked.
#[derive(Debug)]
struct Drawing {
    pieces: Vec<Piece>,
    width: f64,
    height: f64,
    kinds: Vec<Kind>,
}

fn escape(text: &str) -> String {
    minijinja::HtmlEscape(text).to_string()
}

/// A [`RenderBackend`] writing SVG elements with classes and presentation attributes.
struct Svg {
    pieces: Vec<Piece>,
    text: String,
    width: f64,
    height: f64,
    arrows: usize,
}

impl Svg {
    fn grow(&mut self, x: f64, y: f64) {
        self.width = self.width.max(x + 5.0);
        self.height = self.height.max(y + 5.0);
    }
    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.text)));
        }
    }
    /// ` class="…"` of a node's shape (the node's index in `properties`), else of a frame.
    fn class(&mut self, properties: Option<String>) {
        match properties.and_then(|p| p.parse::<usize>().ok()) {
            Some(i) => {
                self.flush();
                self.pieces.push(Piece::Node(i));
            }
            None => self.text.push_str(" class=\"frame\""),
        }
    }
}

impl RenderBackend for Svg {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        self.grow(xy.x + size.x, xy.y + size.y);
        let _ = write!(
            self.text,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{}\"",
            xy.x, xy.y, size.x, size.y, look.rounded
        );
        self.class(properties);
        self.text.push_str("/>");
    }

    fn draw_line(
        &mut self,
        start: Point,
        stop: Point,
        _look: &StyleAttr,
        _properties: Option<String>,
    ) {
        let _ = write!(
            self.text,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"edge\"/>",
            start.x, start.y, stop.x, stop.y
        );
    }

    fn draw_circle(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
    ) {
        self.grow(xy.x + size.x / 2.0, xy.y + size.y / 2.0);
        let _ = write!(
            self.text,
            "<ellipse cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\"",
            xy.x,
            xy.y,
            size.x / 2.0,
            size.y / 2.0
        );
        self.class(properties);
        self.text.push_str("/>");
    }

    fn draw_text(&mut self, xy: Point, text: &str, _look: &StyleAttr) {
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return;
        }
        let step = LAYOUT_FONT as f64;
        // The first line's baseline, so that the block of lines is centred on `xy`.
        let top = xy.y - step * (lines.len() as f64 - 1.0) / 2.0 + TEXT_FONT as f64 * 0.35;
        let _ = write!(
            self.text,
            "<text x=\"{:.1}\" y=\"{top:.1}\" text-anchor=\"middle\" font-size=\"{TEXT_FONT}\">",
            xy.x
        );
        for (i, line) in lines.iter().enumerate() {
            let dy = if i == 0 { 0.0 } else { step };
            let _ = write!(
                self.text,
                "<tspan x=\"{:.1}\" dy=\"{dy:.1}\">{}</tspan>",
                xy.x,
                escape(line)
            );
        }
        self.text.push_str("</text>");
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        _head: (bool, bool),
        _look: &StyleAttr,
        _properties: Option<String>,
        text: &str,
    ) {
        if path.len() < 2 {
            return;
        }
        for (a, b) in path {
            self.grow(a.x, a.y);
            self.grow(b.x, b.y);
        }
        // The bezier path as layout-rs describes it: an exit vector, then entry vectors.
        let mut d = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            path[0].0.x,
            path[0].0.y,
            path[0].1.x,
            path[0].1.y,
            path[1].0.x,
            path[1].0.y,
            path[1].1.x,
            path[1].1.y
        );
        for (a, b) in path.iter().skip(2) {
            let _ = write!(d, " S {:.1} {:.1}, {:.1} {:.1}", a.x, a.y, b.x, b.y);
        }
        let id = self.arrows;
        self.arrows += 1;
        let class = if dashed { "edge dashed" } else { "edge" };
        let _ = write!(
            self.text,
            "<path id=\"fc-e{id}\" d=\"{d}\" class=\"{class}\" marker-end=\"url(#fc-head)\"/>"
        );
        if !text.is_empty() {
            let _ = write!(
                self.text,
                "<text class=\"edge-label\" font-size=\"12\" dy=\"-4\"><textPath href=\"#fc-e{id}\" \
                 startOffset=\"50%\" text-anchor=\"middle\">{}</textPath></text>",
                escape(text)
            );
        }
    }

    fn create_clip(&mut self, _xy: Point, _size: Point, _rounded_px: usize) -> ClipHandle {
        0
    }
}

/// Lays `spec` out. `None` when the layout library fails on it (it asserts on graphs it
/// does not handle; the page then lists the active steps without a drawing).
fn lay_out(spec: &Spec) -> Option<Drawing> {
    let run = || {
        let dir = Orientation::TopToBottom;
        let mut graph = VisualGraph::new(dir);
        let handles: Vec<_> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, (_, label, kind))| {
                let shape = match kind {
                    Kind::Event => ShapeKind::new_circle(label),
                    _ => ShapeKind::new_box(label),
                };
                let rounded = match kind {
                    Kind::Task => 10,
                    _ => 0,
                };
                let look = StyleAttr::new(
                    Color::fast("black"),
                    1,
                    Some(Color::fast("white")),
                    rounded,
                    LAYOUT_FONT,
                );
                let size = get_shape_size(dir, &shape, LAYOUT_FONT, false);
                let element =
                    Element::create_with_properties(shape, look, dir, size, i.to_string());
                graph.add_node(element)
            })
            .collect();
        for (from, to, label) in &spec.edges {
            graph.add_edge(Arrow::simple(label), handles[*from], handles[*to]);
        }
        let mut svg = Svg {
            pieces: Vec::new(),
            text: String::new(),
            width: 0.0,
            height: 0.0,
            arrows: 0,
        };
        graph.do_it(false, false, false, &mut svg);
        svg.flush();
        Drawing {
            pieces: svg.pieces,
            width: svg.width,
            height: svg.height,
            kinds: spec.nodes.iter().map(|n| n.2).collect(),
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(drawing) => Some(drawing),
        Err(_) => {
            tracing::warn!("workbench: the flowchart could not be laid out");
            None
        }
    }
}

type Cache = Mutex<HashMap<u64, Option<Arc<Drawing>>>>;
static CACHE: LazyLock<Cache> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The drawing of `spec`, laid out once.
fn drawing(spec: &Spec) -> Option<Arc<Drawing>> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    spec.hash(&mut h);
    let key = h.finish();
    if let Some(found) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return found.clone();
    }
    let drawn = lay_out(spec).map(Arc::new);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(key, drawn.clone());
    drawn
}

/// The flowchart of `model` as inline SVG, the nodes of `active` marked, with its text
/// alternative (`title`, and the active steps by their labels in `desc`). `None`: no
/// drawing could be made.
pub fn svg(model: &Process, active: &[String], title: &str, desc: &str) -> Option<String> {
    let spec = spec(model);
    let drawing = drawing(&spec)?;
    let active: HashSet<usize> = spec
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| active.contains(&n.0))
        .map(|(i, _)| i)
        .collect();
    let (w, h) = (drawing.width.ceil(), drawing.height.ceil());
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"flowchart\" width=\"{w}\" \
         height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-labelledby=\"fc-title fc-desc\"><title id=\"fc-title\">{}</title>\
         <desc id=\"fc-desc\">{}</desc><defs><marker id=\"fc-head\" markerWidth=\"10\" \
         markerHeight=\"7\" refX=\"10\" refY=\"3.5\" orient=\"auto\">\
         <polygon points=\"0 0, 10 3.5, 0 7\" class=\"head\"/></marker></defs>",
        escape(title),
        escape(desc)
    );
    for piece in &drawing.pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Node(i) => {
                let kind = drawing.kinds.get(*i).map_or("step", |k| k.class());
                let mark = if active.contains(i) { " active" } else { "" };
                let _ = write!(out, " class=\"node {kind}{mark}\"");
            }
        }
    }
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn social_assistance() -> Process {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
        let source = std::fs::read_to_string(dir.join("social_assistance.flow")).expect("flow");
        let load = |path: &str| std::fs::read_to_string(dir.join(path)).ok();
        let compiled = yimen_dsl::compile("social_assistance.flow", &source, &load);
        compiled
            .process
            .unwrap_or_else(|| panic!("{:?}", compiled.diagnostics))
    }

    #[test]
    fn labels_wrap_at_twelve_wide_characters() {
        assert_eq!(wrap("受理窗口审查相关申请材料"), "受理窗口审查相关申请材料");
        assert_eq!(
            wrap("1个工作日内提交给相关救助部门分办（转办）"),
            "1个工作日内提交给相关救\n助部门分办（转办）"
        );
    }

    #[test]
    fn the_social_assistance_chart_marks_its_active_node_and_is_wide_enough() {
        let model = social_assistance();
        let active = vec!["review".to_string()];
        let svg = svg(
            &model,
            &active,
            "流程图",
            "当前所在环节：受理窗口审查相关申请材料",
        )
        .expect("laid out");
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("class=\"node task active\"").count(), 1);
        assert!(svg.contains("受理窗口审查相关申请材料"));
        assert!(svg.contains("<desc id=\"fc-desc\">当前所在环节"));
        // No inline style: the pages' CSP would refuse it.
        assert!(!svg.contains("style="));
        assert!(!svg.contains("<style"));
        // Every box is at least one em a character of its longest line wide.
        let spec = spec(&model);
        let drawing = drawing(&spec).expect("laid out");
        assert!(drawing.width > 100.0 && drawing.height > 100.0);
        let again = super::svg(&model, &[], "流程图", "").expect("cached");
        assert!(!again.contains("active"));
    }
}
