// 统计: draws each table's chart with ECharts from the JSON the page embeds
// (#statistics-data). The tables on the page hold the same figures; without this script, or
// in print, they are what people read.
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("statistics-data");
    if (!source || typeof echarts === "undefined") { return; }
    var data;
    try { data = JSON.parse(source.textContent); } catch (e) { return; }
    var palette = ["#5470c6", "#91cc75", "#ee6666", "#3ba272", "#fac858", "#9a60b4", "#73c0de", "#fc8452", "#ea7ccc"];
    data.tables.forEach(function (t) {
      var el = document.querySelector('.chart[data-table="' + t.name + '"]');
      if (!el || t.labels.length === 0) { if (el) { el.hidden = true; } return; }
      var chart = echarts.init(el, null, { renderer: "canvas" });
      // The registrations and the events; open and closed are in the table.
      var shown = data.columns.length - 2;
      var series = [];
      for (var c = 0; c < shown; c++) {
        series.push({ name: data.columns[c], type: t.kind, data: t.series[c], emphasis: { focus: "series" } });
      }
      chart.setOption({
        animation: false,
        aria: { enabled: true, decal: { show: true } },
        color: palette,
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 48, right: 16, top: 40, bottom: t.labels.length > 6 ? 72 : 32 },
        xAxis: { type: "category", data: t.labels, axisLabel: { interval: 0, rotate: t.labels.length > 6 ? 30 : 0 } },
        yAxis: { type: "value", minInterval: 1 },
        series: series
      });
      window.addEventListener("resize", function () { chart.resize(); });
      window.addEventListener("beforeprint", function () { chart.resize(); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
