require('express')().listen(process.env.PORT || 4000);
