(ns app.core)
(defn -main [] (println "hi"))
